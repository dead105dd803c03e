"""lerobot-wds: LeRobot v3 datasets as self-contained WebDataset episode shards, streamed exactly.

The converter and the reader are imported on first use, so that a converter process does not load
the reader's decoder libraries (and vice versa).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .format import FORMAT_VERSION, Manifest, ShardFormatError, read_manifest
from .storage import RetryPolicy

if TYPE_CHECKING:
    from .converter.check import CheckConfig, CheckReport, check_source
    from .converter.convert import ConvertConfig, ConvertResult, convert
    from .converter.export import ExportConfig, ExportResult, export
    from .converter.verify import VerifyReport, inspect_dataset, verify
    from .reader import EpisodeInfo, Item, MixedDataset, ReaderConfig, ShardedLeRobotDataset, collate

_LAZY = {
    "CheckConfig": ".converter",
    "CheckReport": ".converter",
    "ConvertConfig": ".converter",
    "ConvertResult": ".converter",
    "ExportConfig": ".converter",
    "ExportResult": ".converter",
    "EpisodeInfo": ".reader",
    "Item": ".reader",
    "MixedDataset": ".reader",
    "ReaderConfig": ".reader",
    "ShardedLeRobotDataset": ".reader",
    "VerifyReport": ".converter",
    "check_source": ".converter",
    "collate": ".reader",
    "convert": ".converter",
    "export": ".converter",
    "inspect_dataset": ".converter",
    "verify": ".converter",
}

__all__ = [
    "FORMAT_VERSION",
    "CheckConfig",
    "CheckReport",
    "ConvertConfig",
    "ConvertResult",
    "EpisodeInfo",
    "ExportConfig",
    "ExportResult",
    "Item",
    "Manifest",
    "MixedDataset",
    "ReaderConfig",
    "RetryPolicy",
    "ShardFormatError",
    "ShardedLeRobotDataset",
    "VerifyReport",
    "check_source",
    "collate",
    "convert",
    "export",
    "inspect_dataset",
    "read_manifest",
    "verify",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
