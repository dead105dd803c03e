"""Run with a LeRobot venv's python: load a LeRobot v3 folder with LeRobot's own ``LeRobotDataset`` and
compare its items with a fixture's golden items (what LeRobot returned for the original dataset).

    python tests/lerobot_check.py EXPORTED_ROOT GOLDEN_JSONL_GZ

Prints one JSON object: ``{"checked": N, "num_frames": M, "failures": [...]}``. Both golden layouts are
understood: the session-1 one (header ``kind``, per-config items, frames as sha256 of ``rint(x*255)``
uint8 per frame) and the fixture writers' one (``scripts/lerobot_fixture.py``: one config, tensors as
values or the sha256 of their bytes).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision_shim  # noqa: F401  (the lerobot venv's CPU torchvision stand-in)
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def frame_sha256(value: torch.Tensor) -> list[str]:
    array = value.numpy()
    if array.ndim == 3:
        array = array[None]
    return [hashlib.sha256(np.rint(f * 255).astype(np.uint8).tobytes()).hexdigest() for f in array]


def problems(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    found = [f"keys differ: {sorted(set(got) ^ set(want))}"] if set(got) != set(want) else []
    for key, expected in want.items():
        value = got.get(key)
        if not isinstance(expected, dict):
            if value != expected:
                found.append(f"{key}: {value!r} != {expected!r}")
            continue
        if not isinstance(value, torch.Tensor):
            found.append(f"{key}: {type(value).__name__}; expected a tensor")
            continue
        if list(value.shape) != expected["shape"] or str(value.dtype) != f"torch.{expected['dtype']}":
            found.append(f"{key}: {tuple(value.shape)} {value.dtype}; expected {expected}")
        elif "frames" in expected:
            if frame_sha256(value) != [f["sha256"] for f in expected["frames"]]:
                found.append(f"{key}: frames differ")
        elif "sha256" in expected:
            if hashlib.sha256(value.contiguous().numpy()).hexdigest() != expected["sha256"]:
                found.append(f"{key}: bytes differ")
        elif value.flatten().tolist() != expected["values"]:
            found.append(f"{key}: values differ")
    return found


def main(root: Path, golden: Path) -> None:
    with gzip.open(golden, "rt") as f:
        header, *records = [json.loads(line) for line in f]
    deltas = header["delta_timestamps"]
    configs = deltas if "kind" in header else {None: deltas}
    datasets = {
        name: LeRobotDataset(f"local/{root.name}", root=root, delta_timestamps=value)
        for name, value in configs.items()
    }
    failures = []
    for record in records:
        item = datasets[record.get("config")][record["index"]]
        found = problems(item, record["item"])
        if found:
            failures.append({"config": record.get("config"), "index": record["index"], "problems": found})
    num_frames = len(next(iter(datasets.values())))
    report = {"checked": len(records), "num_frames": num_frames, "failures": failures[:10]}
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
