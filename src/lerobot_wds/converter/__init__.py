"""Converter: LeRobot v3 dataset -> self-contained episode tar shards."""

from .check import CheckConfig, CheckReport, Finding, check_source
from .cluster import SlurmConfig, SlurmJobs
from .convert import (
    ConvertConfig,
    ConvertProgress,
    ConvertResult,
    PartResult,
    convert,
    convert_part,
    plan_conversion,
    submit_slurm,
)
from .export import ExportConfig, ExportProgress, ExportResult, export
from .finalize import finalize
from .plan import ConversionPlan
from .verify import VerifyReport, inspect_dataset, verify

__all__ = [
    "CheckConfig",
    "CheckReport",
    "ConversionPlan",
    "ConvertConfig",
    "ConvertProgress",
    "ConvertResult",
    "ExportConfig",
    "ExportProgress",
    "ExportResult",
    "Finding",
    "PartResult",
    "SlurmConfig",
    "SlurmJobs",
    "VerifyReport",
    "check_source",
    "convert",
    "convert_part",
    "export",
    "finalize",
    "inspect_dataset",
    "plan_conversion",
    "submit_slurm",
    "verify",
]
