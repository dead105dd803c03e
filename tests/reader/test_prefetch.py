"""Read-ahead: the fetch order is exact, the byte budget holds, adjacent episodes share one read."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from lerobot_wds import ShardedLeRobotDataset
from lerobot_wds.format import EpisodeEntry
from lerobot_wds.reader.episodes import Episode, EpisodeSource
from lerobot_wds.reader.order import WorkerInfo
from lerobot_wds.reader.prefetch import EpisodePrefetcher


def drain(stream: Any) -> list[tuple[int, int]]:
    return [(int(item["index"]), int(item["episode_index"])) for item in stream]


@pytest.mark.parametrize(
    "options",
    [
        {"seed": 1},
        {"seed": 2, "frame_order": "forward", "episode_pool_size": 3},
        {"shuffle": False},
        {"seed": 3, "frame_shuffle_buffer_size": 100},
    ],
    ids=["shuffled", "forward", "in-order", "frame-buffer"],
)
def test_read_ahead_follows_the_pools_fetch_order_exactly(
    converted: dict[str, str], options: dict[str, Any]
) -> None:
    """With one episode read ahead at a time, any disagreement between the twin's order and the pool's
    fetches would be a miss; the items are those of on-demand reads."""
    ahead = ShardedLeRobotDataset(converted["multi"], prefetch_bytes=1, **options)
    on_demand = ShardedLeRobotDataset(converted["multi"], prefetch_bytes=0, **options)
    for who in [WorkerInfo(rank=r, world_size=3, worker=0, num_workers=1) for r in range(3)]:
        for draws in [0, 157]:  # from the start, and restored mid-epoch
            stream = ahead.stream(who, draws)
            assert drain(stream) == drain(on_demand.stream(who, draws))
            assert stream.prefetcher is not None
            stats = stream.prefetcher.stats
            assert stats.misses == 0, stats
            assert stats.hits == stream.source.fetched > 0, stats


def test_padding_repeats_are_read_ahead_too(converted: dict[str, str]) -> None:
    dataset = ShardedLeRobotDataset(converted["multi"], seed=5, prefetch_bytes=1)
    streams = [dataset.stream(WorkerInfo(rank=r, world_size=5, worker=0, num_workers=1)) for r in range(5)]
    assert any(s.pool.num_samples > s.pool.main_frames for s in streams)  # some rank pads
    for stream in streams:
        drain(stream)
        assert stream.prefetcher is not None
        assert stream.prefetcher.stats.misses == 0


def _shard_order(dataset: ShardedLeRobotDataset) -> list[EpisodeEntry]:
    return sorted(dataset.entries, key=lambda e: (e.shard, e.offset_bytes))


@pytest.mark.parametrize("budget_bytes", [1, 150_000, 600_000, 1 << 30])
def test_bytes_read_ahead_stay_within_the_budget(converted: dict[str, str], budget_bytes: int) -> None:
    dataset = ShardedLeRobotDataset(converted["multi"])
    source = EpisodeSource(dataset.url, dataset.camera_keys)
    order = _shard_order(dataset)
    largest = max(e.size_bytes for e in order)
    lock = threading.Lock()
    counts = {"started": 0, "claimed": 0}

    def fetch_run(entries: list[EpisodeEntry]) -> list[Episode]:
        with lock:
            counts["started"] += sum(e.size_bytes for e in entries)
        return source.fetch_run(entries)

    prefetcher = EpisodePrefetcher(iter(order), fetch_run, budget_bytes=budget_bytes, num_threads=3)
    try:
        for entry in order:
            with lock:  # reads started but not yet claimed: never more than the budget (or one episode)
                assert counts["started"] - counts["claimed"] <= max(budget_bytes, largest)
            episode = prefetcher.fetch(entry)
            counts["claimed"] += entry.size_bytes
            assert episode.entry == entry
            assert episode.columns["action"][0, 0] == entry.episode_index * 10000
    finally:
        prefetcher.close()
    assert prefetcher.stats.misses == 0
    assert counts["started"] == sum(e.size_bytes for e in order)  # every byte read exactly once


def test_adjacent_episodes_of_a_shard_share_one_read(converted: dict[str, str]) -> None:
    """In shard order with room for whole shards, each shard is read with one request."""
    dataset = ShardedLeRobotDataset(converted["multi"])
    source = EpisodeSource(dataset.url, dataset.camera_keys)
    order = _shard_order(dataset)
    prefetcher = EpisodePrefetcher(iter(order), source.fetch_run, budget_bytes=1 << 30, num_threads=2)
    for entry in order:
        prefetcher.fetch(entry)
    prefetcher.close()
    assert len(dataset.manifest.shards) > 1
    assert source.requests == prefetcher.stats.requests == len(dataset.manifest.shards)
    assert source.fetched == len(order)


def test_in_order_reader_reads_each_shard_with_few_requests(converted: dict[str, str]) -> None:
    dataset = ShardedLeRobotDataset(converted["multi"], shuffle=False)
    stream = iter(dataset)
    assert len(drain(stream)) == 1852
    assert dataset.timing_stats()["requests"] == len(dataset.manifest.shards)
    assert dataset.timing_stats()["episodes"] == 24


def test_a_missing_shard_fails_the_read_ahead_with_its_url(converted: dict[str, str], tmp_path: Path) -> None:
    root = tmp_path / "multi"
    shutil.copytree(converted["multi"], root)
    dataset = ShardedLeRobotDataset(str(root), seed=0, prefetch_bytes=1 << 30)
    missing = dataset.manifest.shards[-1].path
    os.remove(root / missing)
    with pytest.raises(FileNotFoundError, match=missing.split("/")[-1]):
        drain(dataset)


def test_iteration_replaced_mid_epoch_stops_reading_ahead(converted: dict[str, str]) -> None:
    dataset = ShardedLeRobotDataset(converted["multi"], prefetch_bytes=1)
    first = iter(dataset)
    next(first)
    second = iter(dataset)  # e.g. a new epoch started before the last one ended
    assert first.prefetcher is not None
    assert first.prefetcher.closed
    assert torch.is_tensor(next(second)["index"])
