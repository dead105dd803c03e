"""Converter: LeRobot v3 dataset -> self-contained episode tar shards."""

from .convert import ConvertConfig, ConvertProgress, ConvertResult, convert, plan_conversion
from .export import ExportConfig, ExportProgress, ExportResult, export
from .plan import ConversionPlan
from .verify import VerifyReport, inspect_dataset, verify

__all__ = [
    "ConversionPlan",
    "ConvertConfig",
    "ConvertProgress",
    "ConvertResult",
    "ExportConfig",
    "ExportProgress",
    "ExportResult",
    "VerifyReport",
    "convert",
    "export",
    "inspect_dataset",
    "plan_conversion",
    "verify",
]
