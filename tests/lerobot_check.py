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
import json
import sys
from pathlib import Path

import torchvision_shim  # noqa: F401  (the lerobot venv's CPU torchvision stand-in)
from itemdiff import item_problems
from lerobot.datasets.lerobot_dataset import LeRobotDataset


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
        found = item_problems(item, record["item"])
        if found:
            failures.append({"config": record.get("config"), "index": record["index"], "problems": found})
    num_frames = len(next(iter(datasets.values())))
    report = {"checked": len(records), "num_frames": num_frames, "failures": failures[:10]}
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
