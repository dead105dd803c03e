"""What the fixture writers share: LeRobot's items as golden JSON lines, and the command line.

Used by make_images_fixture.py and make_depth_fixture.py, both run with the LeRobot 0.6.1 venv.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
from collections.abc import Callable, Container
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def tensor_json(value: object, hashed: bool) -> object:
    """A tensor as shape, dtype and either its values or (``hashed``) the sha256 of its bytes."""
    import torch

    if not isinstance(value, torch.Tensor):
        return value
    described = {"shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
    if hashed:
        return described | {"sha256": hashlib.sha256(value.contiguous().numpy()).hexdigest()}
    return described | {"values": value.flatten().tolist()}


def write_golden(
    out: Path, fps: int, deltas: dict[str, list[float]], hashed: Callable[[str, Any], bool] | Container[str]
) -> None:
    """``golden.jsonl.gz``: a header, then LeRobot's map-style ``LeRobotDataset[index]`` for every index
    (tensors whose ``hashed(key, value)`` is true, or whose key is in ``hashed``, by sha256)."""
    import torch
    import torchvision_shim  # noqa: F401  (the lerobot venv's CPU torchvision stand-in)
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    def is_hashed(key: str, value: Any) -> bool:
        if not isinstance(value, torch.Tensor):
            return False
        return hashed(key, value) if callable(hashed) else key in hashed

    dataset = LeRobotDataset(f"local/{out.name}", root=out, delta_timestamps=deltas)
    with gzip.open(out / "golden.jsonl.gz", "wt") as f:
        f.write(json.dumps({"fps": fps, "delta_timestamps": deltas, "num_frames": len(dataset)}) + "\n")
        for index in range(len(dataset)):
            item = {k: tensor_json(v, is_hashed(k, v)) for k, v in dataset[index].items()}
            f.write(json.dumps({"index": index, "item": item}) + "\n")


def main(doc: str, name: str, write: Callable[[Path], None], golden: Callable[[Path], None]) -> None:
    """``--out tests/data/<name>``: written afresh by ``write``, then its golden items by ``golden``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "tests/data" / name)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    write(args.out)
    golden(args.out)
    print(f"wrote {args.out}")
