"""Parity with LeRobot: every item of every golden file, value for value and frame for frame (on g1, a
real recording, frames by sha256 only: its frames carry no codes).

The golden files hold what LeRobot 0.6.1's map-style LeRobotDataset returned (see the fixtures README).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from typing import Any

import numpy as np
import pytest
import torch
from helpers import FIXTURES, fixture_dir

from lerobot_wds import ShardedLeRobotDataset


def golden(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with gzip.open(fixture_dir(name) / "golden.jsonl.gz", "rt") as f:
        lines = [json.loads(line) for line in f]
    return lines[0], lines[1:]


def frame_sha256(frames: torch.Tensor) -> list[str]:
    array = frames.numpy()
    if array.ndim == 3:
        array = array[None]
    return [hashlib.sha256(np.rint(f * 255).astype(np.uint8).tobytes()).hexdigest() for f in array]


def differences(ours: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    problems = [f"keys differ: {sorted(set(ours) ^ set(expected))}"] if set(ours) != set(expected) else []
    for key, want in expected.items():
        got = ours.get(key)
        if isinstance(want, str):
            if got != want:
                problems.append(f"{key}: {got!r} != {want!r}")
            continue
        assert isinstance(got, torch.Tensor)
        if list(got.shape) != want["shape"] or str(got.dtype) != f"torch.{want['dtype']}":
            problems.append(
                f"{key}: {tuple(got.shape)} {got.dtype}; expected {want['shape']} {want['dtype']}"
            )
        elif "frames" in want:
            if frame_sha256(got) != [f["sha256"] for f in want["frames"]]:
                problems.append(f"{key}: frame sha256 differ")
        elif got.flatten().tolist() != want["values"]:
            problems.append(f"{key}: {got.flatten().tolist()} != {want['values']}")
    return problems


@pytest.mark.parametrize("name", [*FIXTURES, "g1"])
def test_every_golden_item(converted: dict[str, str], name: str) -> None:
    header, items = golden(name)
    datasets = {
        config: ShardedLeRobotDataset(converted[name], delta_timestamps=delta_timestamps)
        for config, delta_timestamps in header["delta_timestamps"].items()
    }
    assert datasets["short"].num_frames == header["num_frames"]
    assert datasets["short"].camera_keys == header["camera_keys"]
    failures = {}
    for record in items:
        problems = differences(datasets[record["config"]].item_at(record["index"]), record["item"])
        if problems:
            failures[(record["config"], record["index"])] = problems
    assert not failures, dict(list(failures.items())[:5])
    assert len(items) > 100


def test_variable_size_list_columns_become_arrays_of_the_features_dtype(converted: dict[str, str]) -> None:
    """g1's state and action are list<float> (LeRobot's v2.1->v3.0 converter): tensors, as LeRobot's."""
    item = ShardedLeRobotDataset(converted["g1"], delta_timestamps={"action": [0.0, 1 / 30]}).item_at(7)
    assert item["observation.state"].dtype == torch.float32
    assert item["observation.state"].shape == (26,)
    assert item["action"].shape == (2, 26)
