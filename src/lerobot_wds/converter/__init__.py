"""Converter: LeRobot v3 dataset -> self-contained episode tar shards."""

from .convert import ConvertConfig, ConvertProgress, ConvertResult, convert
from .verify import VerifyReport, inspect_dataset, verify

__all__ = [
    "ConvertConfig",
    "ConvertProgress",
    "ConvertResult",
    "VerifyReport",
    "convert",
    "inspect_dataset",
    "verify",
]
