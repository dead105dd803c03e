"""Exact resume with ``on_error="skip"`` where a plain restore is not enough: a mixture of skipping
sources (each source's skip state in the mixture's state) and an elastic restore (episodes found bad
before the save stay skipped for the rest of the saved readers' positions)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_skip import flip_episodes
from torchdata.stateful_dataloader import StatefulDataLoader

import lerobot_wds
from lerobot_wds import MixedDataset, ShardedLeRobotDataset, ShardFormatError
from lerobot_wds.reader import elastic_state, frames

BATCH = 4


@pytest.fixture(scope="module")
def flipped(converted: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """`multi` with episodes 3, 15 and 20 failing to read (a flipped byte each)."""
    return flip_episodes(converted["multi"], tmp_path_factory.mktemp("flipped") / "multi", [3, 15, 20])


def skipping_mixture(root: str) -> MixedDataset:
    """Source 0 (episodes 0-5, 3 bad) laps within the epoch; source 1 (12-23, 15 and 20 bad) does not."""
    a = ShardedLeRobotDataset(root, episodes=list(range(6)), seed=3, episode_pool_size=2, on_error="skip")
    b = ShardedLeRobotDataset(
        root, episodes=list(range(12, 24)), seed=3, episode_pool_size=3, on_error="skip"
    )
    return MixedDataset([a, b], [0.6, 0.4], seed=1, samples_per_epoch=400)


def batches(loader: Any) -> list[list[tuple[int, int]]]:
    return [list(zip(b["dataset_index"].tolist(), b["index"].tolist(), strict=True)) for b in loader]


def mixture_loader(root: str, num_workers: int) -> StatefulDataLoader:
    return StatefulDataLoader(
        skipping_mixture(root), batch_size=BATCH, num_workers=num_workers, collate_fn=lerobot_wds.collate
    )


def skip_states(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The mixture states in a loader state (one per worker)."""
    if "_snapshot" in state:
        workers = state["_snapshot"]["_worker_snapshots"].values()
        return [w["dataset_state"] for w in workers if w.get("dataset_state") is not None]
    return [state["dataset_state"]]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_mixture_of_skipping_sources_resumes_exactly(flipped: str, num_workers: int) -> None:
    full = batches(mixture_loader(flipped, num_workers))
    assert len(full) == 100
    mid_skip = 0  # cuts with a source owing repeats or in the middle of a bad episode
    for cut in range(1, len(full), 3):
        interrupted = mixture_loader(flipped, num_workers)
        iterator = iter(interrupted)
        head = [list(zip(b["dataset_index"].tolist(), b["index"].tolist(), strict=True))
                for b in (next(iterator) for _ in range(cut))]  # fmt: skip
        state = json.loads(json.dumps(interrupted.state_dict()))
        del iterator
        sources = [s for reader in skip_states(state) for s in reader["sources"]]
        mid_skip += any(s.get("skip_owed") or s.get("skip_failed") for s in sources)
        restored = mixture_loader(flipped, num_workers)
        restored.load_state_dict(state)
        assert head + batches(restored) == full, f"cut at batch {cut} of {len(full)}: {state}"
    assert mid_skip >= 2
