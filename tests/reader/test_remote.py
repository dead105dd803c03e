"""Streaming from a real S3 server (SeaweedFS on 127.0.0.1): the same items as from local disk."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import torch
from helpers import DATA

from lerobot_wds import ConvertConfig, ShardedLeRobotDataset, convert
from lerobot_wds.storage import RetryPolicy

FAST_RETRY = RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.05)


def test_round_trip_through_s3(s3_server: dict[str, Any], s3_bucket: str, converted: dict[str, str]) -> None:
    url = f"s3://{s3_bucket}/multi"
    convert(str(DATA / "multi"), url, ConvertConfig(shard_size_mb=0.4, storage_options=s3_server))
    windows = {"action": [i / 15 for i in range(4)], "observation.images.front": [-1 / 15, 0.0]}
    remote = ShardedLeRobotDataset(url, delta_timestamps=windows, seed=2, storage_options=s3_server)
    local = ShardedLeRobotDataset(converted["multi"], delta_timestamps=windows, seed=2)
    assert remote.fingerprint() == local.fingerprint()  # the same bytes: a state resumes in either place
    count = 0
    for ours, reference in zip(remote, local, strict=True):
        assert ours.keys() == reference.keys()
        for key, value in ours.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, reference[key]), key
            else:
                assert value == reference[key]
        count += 1
    assert count == 1852


@pytest.mark.parametrize("prefetch_bytes", [0, 1], ids=["on-demand", "read-ahead"])
def test_epoch_survives_a_flaky_network(
    s3_server: dict[str, Any], s3_bucket: str, prefetch_bytes: int
) -> None:
    """Drop, throttle (503), stall past the timeout, and stop/restart the server during one epoch.

    With read-ahead the faults hit reads in the prefetcher's threads; a budget of one byte keeps one
    episode in flight, so each fault still lands while the epoch is under way."""
    from faultproxy import FaultProxy

    url = f"s3://{s3_bucket}/multi"
    convert(str(DATA / "multi"), url, ConvertConfig(shard_size_mb=0.4, storage_options=s3_server))
    proxy = FaultProxy(int(s3_server["client_kwargs"]["endpoint_url"].rsplit(":", 1)[1]))
    options = {
        **s3_server,
        "client_kwargs": {"endpoint_url": proxy.endpoint},
        "config_kwargs": {"connect_timeout": 1, "read_timeout": 1, "retries": {"max_attempts": 1}},
    }
    # One episode in the pool: reads happen one episode at a time, all through the epoch. A fault is
    # armed at an episode change once the previous one was consumed (with read-ahead, the read that
    # consumes it may still be under way at the next change).
    faults = [
        (lambda: proxy.drop_after(20_000), lambda: proxy.stats["dropped"] >= 1),
        (lambda: proxy.reject(3), lambda: proxy.stats["rejected"] == 3),
        (lambda: proxy.stall(3.0), lambda: proxy.stats["stalled"] == 1),
        (lambda: (proxy.down(), threading.Timer(2.0, proxy.up).start()), lambda: proxy.stats["refused"] >= 1),
    ]
    try:
        dataset = ShardedLeRobotDataset(
            url, seed=4, episode_pool_size=1, prefetch_bytes=prefetch_bytes, storage_options=options
        )
        seen, episodes, armed = [], [], 0
        for item in dataset:
            seen.append(int(item["index"]))
            if not episodes or episodes[-1] != int(item["episode_index"]):
                episodes.append(int(item["episode_index"]))
                if armed < len(faults) and (armed == 0 or faults[armed - 1][1]()):
                    faults[armed][0]()
                    armed += 1
        assert armed == len(faults), f"only {armed} faults armed in {len(episodes)} episodes"
        assert sorted(seen) == list(range(1852))  # every frame exactly once
        stats = dict(proxy.stats)
        assert stats["dropped"] >= 1, stats
        assert stats["rejected"] == 3, stats
        assert stats["stalled"] == 1, stats
        assert stats["refused"] >= 1, stats
    finally:
        proxy.close()


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled", "in-order"])
def test_requests_per_epoch_are_one_per_episode_at_most(
    s3_server: dict[str, Any], s3_bucket: str, shuffle: bool
) -> None:
    """Counted at the wire: a shuffled epoch reads each episode with one GET (never per frame); an
    in-order reader reads each shard with one GET; each shard's size is asked once."""
    from faultproxy import FaultProxy

    url = f"s3://{s3_bucket}/multi"
    convert(str(DATA / "multi"), url, ConvertConfig(shard_size_mb=0.4, storage_options=s3_server))
    proxy = FaultProxy(int(s3_server["client_kwargs"]["endpoint_url"].rsplit(":", 1)[1]))
    options = {**s3_server, "client_kwargs": {"endpoint_url": proxy.endpoint}}
    try:
        dataset = ShardedLeRobotDataset(url, seed=1, shuffle=shuffle, storage_options=options)
        setup = dict(proxy.requests)  # manifest and meta/
        assert sum(1 for _ in dataset) == 1852
        gets = proxy.requests["GET"] - setup.get("GET", 0)
        heads = proxy.requests["HEAD"] - setup.get("HEAD", 0)
    finally:
        proxy.close()
    num_shards = len(dataset.manifest.shards)
    assert gets == (dataset.num_episodes if shuffle else num_shards), proxy.requests
    assert heads <= num_shards, proxy.requests


def test_plain_https_url_reads_the_same_items(
    s3_server: dict[str, Any], s3_bucket: str, converted: dict[str, str]
) -> None:
    """``https://`` (here http on 127.0.0.1: a public bucket's URL) through fsspec's HTTP filesystem:
    ranged GETs by the manifest's offsets, no listing needed."""
    url = f"s3://{s3_bucket}/multi"
    convert(str(DATA / "multi"), url, ConvertConfig(shard_size_mb=0.4, storage_options=s3_server))
    public = f"{s3_server['client_kwargs']['endpoint_url']}/{s3_bucket}/multi"
    remote = ShardedLeRobotDataset(public, seed=6, frame_order="forward", return_uint8=True)
    local = ShardedLeRobotDataset(converted["multi"], seed=6, frame_order="forward", return_uint8=True)
    count = 0
    for ours, reference in zip(remote, local, strict=True):
        assert int(ours["index"]) == int(reference["index"])
        assert torch.equal(ours["observation.images.front"], reference["observation.images.front"])
        count += 1
    assert count == 1852


def test_a_hung_server_fails_the_construction_within_the_bound(
    s3_server: dict[str, Any], s3_bucket: str
) -> None:
    """The manifest and meta/ reads at construction are bounded by ``retry.timeout_s`` as a reader's
    shard reads are: a hung server raises TimeoutError instead of holding the training start for hours."""
    from faultproxy import FaultProxy

    url = f"s3://{s3_bucket}/multi"
    convert(str(DATA / "multi"), url, ConvertConfig(shard_size_mb=0.4, storage_options=s3_server))
    proxy = FaultProxy(int(s3_server["client_kwargs"]["endpoint_url"].rsplit(":", 1)[1]))
    options = {**s3_server, "client_kwargs": {"endpoint_url": proxy.endpoint}, "skip_instance_cache": True}
    bounded = RetryPolicy(initial_backoff_s=0.05, max_backoff_s=0.5, timeout_s=2.0)
    try:
        proxy.hang()
        started = time.monotonic()
        with pytest.raises(
            TimeoutError, match=r"manifest\.json: read did not finish within RetryPolicy\.timeout_s"
        ):
            ShardedLeRobotDataset(url, storage_options=options, retry=bounded)
        assert time.monotonic() - started < 2.0 + 2.5  # the bound, plus fsspec's polling
        proxy.up()
        assert ShardedLeRobotDataset(url, storage_options=options, retry=bounded).num_frames == 1852
    finally:
        proxy.close()


def test_meta_survives_throttling_without_losing_optional_files(
    s3_server: dict[str, Any], s3_bucket: str, converted: dict[str, str]
) -> None:
    """503s answered to the meta/ reads are retried: stats.json, which may be absent, is never taken
    for absent because its read was throttled."""
    from faultproxy import FaultProxy

    url = f"s3://{s3_bucket}/multi"
    convert(str(DATA / "multi"), url, ConvertConfig(shard_size_mb=0.4, storage_options=s3_server))
    proxy = FaultProxy(int(s3_server["client_kwargs"]["endpoint_url"].rsplit(":", 1)[1]))
    options = {
        **s3_server,
        "client_kwargs": {"endpoint_url": proxy.endpoint},
        "config_kwargs": {"retries": {"max_attempts": 1}},
        "skip_instance_cache": True,
    }
    local = ShardedLeRobotDataset(converted["multi"])
    try:
        for num_rejects in range(1, 6):  # throttle the manifest's read and then each meta read in turn
            proxy.reject(num_rejects)
            remote = ShardedLeRobotDataset(url, storage_options=options, retry=FAST_RETRY)
            assert remote.meta.stats.keys() == local.meta.stats.keys(), num_rejects
            assert remote.meta.tasks == local.meta.tasks
    finally:
        proxy.close()
