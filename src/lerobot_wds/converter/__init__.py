"""Converter: LeRobot v3 dataset -> self-contained episode tar shards."""

from .convert import ConvertConfig, ConvertProgress, ConvertResult, convert, plan_conversion
from .plan import ConversionPlan
from .verify import VerifyReport, inspect_dataset, verify

__all__ = [
    "ConversionPlan",
    "ConvertConfig",
    "ConvertProgress",
    "ConvertResult",
    "VerifyReport",
    "convert",
    "inspect_dataset",
    "plan_conversion",
    "verify",
]
