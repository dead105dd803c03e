"""Read-ahead: items as on-demand reads, each episode read once, the byte budget holds, adjacent episodes
share one read."""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import s3fs
import torch
from faultproxy import FaultProxy

from lerobot_wds import ShardedLeRobotDataset
from lerobot_wds.format import EpisodeEntry
from lerobot_wds.reader.episodes import Episode, EpisodeSource
from lerobot_wds.reader.order import SlotPlan, WorkerInfo, whole
from lerobot_wds.reader.readahead import EpisodeReadAhead
from lerobot_wds.reader.schedule import DrawSchedule
from lerobot_wds.storage import RetryPolicy


def drain(stream: Any) -> list[tuple[int, int]]:
    return [(int(item["index"]), int(item["episode_index"])) for item in stream]


class CountingSource(EpisodeSource):
    """Counts bytes whose read started, per admission handed out (to check the budget)."""

    def __init__(self, dataset: ShardedLeRobotDataset) -> None:
        super().__init__(dataset.url, dataset.video_keys, dataset.features)
        self.lock = threading.Lock()
        self.started_bytes = 0

    def fetch_run(self, entries: list[EpisodeEntry]) -> list[Episode]:
        with self.lock:
            self.started_bytes += sum(e.size_bytes for e in entries)
        return super().fetch_run(entries)


def read_ahead(
    dataset: ShardedLeRobotDataset, source: EpisodeSource, entries: list[EpisodeEntry], budget_bytes: int,
    **options: Any,
) -> EpisodeReadAhead:  # fmt: skip
    frames = sum(e.num_frames for e in entries)
    parts = [whole(e) for e in entries]
    plan = SlotPlan(parts=parts, pad_parts=parts, num_samples=frames, num_repeated=0)
    defaults = {"seed": 0, "pool_size": 4, "max_pool_frames": None, "shuffle": True, "forward": False}
    schedule = DrawSchedule(plan, **(defaults | options))
    return EpisodeReadAhead(schedule, source, source.counters, budget_bytes=budget_bytes, num_threads=3)


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
def test_read_ahead_gives_the_items_of_on_demand_reads_reading_each_episode_once(
    converted: dict[str, str], options: dict[str, Any]
) -> None:
    ahead = ShardedLeRobotDataset(converted["multi"], prefetch_bytes=1, **options)
    on_demand = ShardedLeRobotDataset(converted["multi"], prefetch_bytes=0, **options)
    for who in [WorkerInfo(rank=r, world_size=3, worker=0, num_workers=1) for r in range(3)]:
        for draws in [0, 157]:  # from the start, and restored mid-epoch
            stream, reference = ahead._open_stream(who, draws), on_demand._open_stream(who, draws)
            assert drain(stream) == drain(reference)
            # each admission read once, as on-demand reads do at its first draw
            assert stream.counters.episodes == reference.counters.episodes > 0
            assert stream.counters.requests <= stream.counters.episodes
    single = ahead._open_stream(WorkerInfo(), 0)
    assert single.counters.episodes == 0
    assert len({episode for _, episode in drain(single)}) == single.counters.episodes == 24


def test_padding_repeats_are_read_ahead_too(converted: dict[str, str]) -> None:
    dataset = ShardedLeRobotDataset(converted["multi"], seed=5, prefetch_bytes=1 << 30)
    streams = [
        dataset._open_stream(WorkerInfo(rank=r, world_size=5, worker=0, num_workers=1)) for r in range(5)
    ]
    padded = [s for s in streams if s.num_samples > s.episodes.schedule.plan.num_frames]
    assert padded  # some rank pads
    for stream in padded:
        items = drain(stream)
        assert len(items) == stream.num_samples
        # the repeats read their episodes again (the first reads were dropped after their last draw)
        assert stream.counters.episodes > len({episode for _, episode in items})


def _shard_order(dataset: ShardedLeRobotDataset) -> list[EpisodeEntry]:
    return sorted(dataset.entries, key=lambda e: (e.shard, e.offset_bytes))


@pytest.mark.parametrize("budget_bytes", [1, 150_000, 600_000, 1 << 30])
def test_bytes_read_ahead_stay_within_the_budget(converted: dict[str, str], budget_bytes: int) -> None:
    dataset = ShardedLeRobotDataset(converted["multi"])
    source = CountingSource(dataset)
    entries = _shard_order(dataset)
    largest = max(e.size_bytes for e in entries)
    episodes = read_ahead(dataset, source, entries, budget_bytes)
    claimed_bytes = 0
    claimed: set[int] = set()
    try:
        for draw in episodes:
            index = draw.episode.entry.episode_index
            if index not in claimed:
                claimed.add(index)
                claimed_bytes += draw.episode.entry.size_bytes
            with (
                source.lock
            ):  # reads started but not yet claimed: never more than the budget (or one episode)
                assert source.started_bytes - claimed_bytes <= max(budget_bytes, largest)
            assert draw.episode.columns["action"][draw.frame_index, 0] == index * 10000 + draw.frame_index
    finally:
        episodes.close()
    assert source.started_bytes == sum(e.size_bytes for e in entries)  # every byte read exactly once


def test_adjacent_episodes_of_a_shard_share_one_read(converted: dict[str, str]) -> None:
    """In shard order with room for whole shards, each shard is read with one request."""
    dataset = ShardedLeRobotDataset(converted["multi"])
    source = EpisodeSource(dataset.url, dataset.video_keys, dataset.features)
    entries = _shard_order(dataset)
    assert sum(1 for _ in read_ahead(dataset, source, entries, 1 << 30, shuffle=False)) == dataset.num_frames
    assert len(dataset.manifest.shards) > 1
    assert source.counters.requests == len(dataset.manifest.shards)
    assert source.counters.episodes == len(entries)


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
    assert first.episodes.closed
    assert torch.is_tensor(next(second)["index"])


def test_threads_waiting_for_a_hung_shard_size_fail_together(
    s3_server: dict[str, Any], s3_bucket: str
) -> None:
    """Four read-ahead threads need the size of one shard on a hung server: one request is made and all
    four fail with its timeout within one bound (queued behind a lock, they failed one bound after
    another)."""
    fs = s3fs.S3FileSystem(**s3_server)
    fs.pipe(f"{s3_bucket}/shard.tar", b"x" * 1024)
    shard = f"s3://{s3_bucket}/shard.tar"
    proxy = FaultProxy(int(s3_server["client_kwargs"]["endpoint_url"].rsplit(":", 1)[1]))
    try:
        options = {
            **s3_server,
            "client_kwargs": {"endpoint_url": proxy.endpoint},
            "skip_instance_cache": True,
        }
        bounded = RetryPolicy(initial_backoff_s=0.05, max_backoff_s=0.5, timeout_s=2.0)
        source = EpisodeSource(f"s3://{s3_bucket}", [], {}, options, bounded)
        proxy.hang()
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            errors = [f.exception() for f in [pool.submit(source._shard_size, shard) for _ in range(4)]]
        assert all(isinstance(e, TimeoutError) for e in errors), errors
        assert time.monotonic() - started < 2.0 + 2.5  # one bound (plus fsspec's polling), not four
        proxy.up()
        assert source._shard_size(shard) == 1024  # a failed request is not kept
    finally:
        proxy.close()
