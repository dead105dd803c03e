"""Row access shared by plot_bench.py's plots and tables: results files, reader rows, number formats."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

TIMES = "\u00d7"  # the multiplication sign, as in the README tables


# Rows of read.json (bench_read.LEROBOT, bench_read.VARIANTS, then the limits), with labels and fixed
# colours; the keys of results files made before g1 after them.
LINES = {
    "lerobot_float32": ("LeRobot 0.6.1 float32", "C3"),
    "lerobot_uint8": ("LeRobot 0.6.1 uint8", "C1"),
    "defaults": ("ours defaults", "C0"),
    "defaults_torch_collate": ("ours defaults, torch's collate", "C9"),
    "defaults_collate": ("ours defaults + collate", "C9"),
    "drop_in": ("ours drop-in", "C2"),
    "fast": ("ours fast", "C6"),
    "forward": ("ours forward", "C8"),
    "forward_uint8": ("ours forward uint8", "C9"),
    "batched": ("ours batched", "C4"),
    "forward_uint8_batched": ("ours forward uint8 batched", "C5"),
    "lerobot": ("LeRobot 0.6.1", "C3"),
    "ours": ("ours (defaults)", "C0"),
    "ours_forward": ("ours forward", "C8"),
    "ours_forward_uint8": ("ours forward uint8", "C9"),
    "ours_batched": ("ours batched", "C4"),
    "ours_forward_uint8_batched": ("ours forward uint8 batched", "C5"),
    "ours_fast": ("ours fast path (forward uint8 batched channels_last)", "C6"),
}


LIMIT_LINES = {  # drawn dashed / hatched: no pipeline around the decoder
    "random_window_limit": ("random-window limit", "k", "--"),
    "sequential_bound": ("sequential decode bound", "0.45", ":"),
    "decode_limit": ("decode limit (torchcodec alone)", "k", "--"),
}


# What a row of ours is compared with in files made before g1 (no "variants" record).
LEGACY = ("lerobot", "decode_limit")


FIRST_DATASET = "g1"  # the real robot's camera: its plot and tables come first


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / name
    if not path.is_file():
        print(f"skip {name}: {path} not found")
        return None
    return json.loads(path.read_text())


def labels_of(*records: dict[str, Any] | None) -> dict[str, str]:
    """Dataset name -> "name (HxW)" from any results row that records the resolution."""
    out: dict[str, str] = {}
    for record in records:
        for row in (record or {}).get("results", []):
            if "resolution" in row:
                out[row["dataset"]] = f"{row['dataset']} ({row['resolution']})"
    return out


def by_dataset(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows per dataset, g1 first, the others in file order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: r["dataset"] != FIRST_DATASET):
        out.setdefault(row["dataset"], []).append(row)
    return out


def value(cell: Any, key: str) -> float | None:
    """A measurement, or None when the child failed (its cell holds "error")."""
    return cell.get(key) if isinstance(cell, dict) else None


def readers(rows: list[dict[str, Any]]) -> list[str]:
    """The reader rows (LeRobot's and ours) present in some row, in LINES order."""
    return [key for key in LINES if any(key in r for r in rows)]


def limits(rows: list[dict[str, Any]]) -> list[str]:
    return [key for key in LIMIT_LINES if any(key in r for r in rows)]


def workers_best(workers: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """workers.json's rows per worker count, by source size."""
    out: dict[int, list[dict[str, Any]]] = {}
    for row in sorted(workers["rows"], key=lambda r: r["source_mb"]):
        out.setdefault(row["workers"], []).append(row)
    return out


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_number(x: float | None) -> str:
    """Whole numbers from 100 up, rounding halves up (316.5 -> 317, as the README does)."""
    if x is None:
        return "error"
    return f"{math.floor(x + 0.5):,}" if x >= 100 else f"{x:g}"


def name_of(key: str) -> str:
    if key in LINES:
        return LINES[key][0]
    return LIMIT_LINES[key][0] if key in LIMIT_LINES else key.replace("_", " ")
