"""Epochs through real DataLoaders: set_epoch reaches running workers; ranks split episodes disjointly."""

from __future__ import annotations

from typing import Any

import pytest
from torch.utils.data import DataLoader

from lerobot_wds import ShardedLeRobotDataset


def epoch_orders(dataset: ShardedLeRobotDataset, epochs: int, **loader_options: Any) -> list[list[int]]:
    loader = DataLoader(dataset, batch_size=32, **loader_options)
    orders = []
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        orders.append([i for batch in loader for i in batch["index"].tolist()])
    return orders


def test_set_epoch_reaches_persistent_workers(converted: dict[str, str]) -> None:
    url = converted["tiny"]
    fresh = epoch_orders(ShardedLeRobotDataset(url, seed=2), 3, num_workers=2)
    persistent = epoch_orders(ShardedLeRobotDataset(url, seed=2), 3, num_workers=2, persistent_workers=True)
    assert persistent == fresh  # the same order as workers started anew each epoch
    assert len({tuple(order) for order in persistent}) == 3  # every epoch reshuffled
    assert all(sorted(order) == list(range(224)) for order in persistent)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_two_ranks_split_frames_disjointly(converted: dict[str, str], num_workers: int) -> None:
    url = converted["multi"]
    frames: list[list[int]] = []
    for rank in range(2):
        dataset = ShardedLeRobotDataset(url, rank=rank, world_size=2, seed=9)
        dataset.set_epoch(1)
        loader = DataLoader(dataset, batch_size=32, num_workers=num_workers)
        batches = list(loader)
        frames.append([i for b in batches for i in b["index"].tolist()])
    assert not set(frames[0]) & set(frames[1])  # repeats that equalise the counts are a rank's own frames
    assert set(frames[0]) | set(frames[1]) == set(range(1852))
    assert len(frames[0]) == len(frames[1])  # equal samples per rank: DDP does not hang
