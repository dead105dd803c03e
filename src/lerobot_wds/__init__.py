"""lerobot-wds: LeRobot v3 datasets as self-contained WebDataset episode shards, streamed exactly."""

from .converter import ConvertConfig, ConvertResult, VerifyReport, convert, inspect_dataset, verify
from .format import FORMAT_VERSION, Manifest, ShardFormatError, read_manifest
from .reader import ReaderConfig, ShardedLeRobotDataset

__all__ = [
    "FORMAT_VERSION",
    "ConvertConfig",
    "ConvertResult",
    "Manifest",
    "ReaderConfig",
    "ShardFormatError",
    "ShardedLeRobotDataset",
    "VerifyReport",
    "convert",
    "inspect_dataset",
    "read_manifest",
    "verify",
]
