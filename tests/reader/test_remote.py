"""Streaming from a real S3 server (SeaweedFS on 127.0.0.1): the same items as from local disk."""

from __future__ import annotations

import threading
from typing import Any

import torch
from helpers import DATA

from lerobot_wds import ConvertConfig, ShardedLeRobotDataset, convert


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


def test_epoch_survives_a_flaky_network(s3_server: dict[str, Any], s3_bucket: str) -> None:
    """Drop, throttle (503), stall past the timeout, and stop/restart the server during one epoch."""
    from faultproxy import FaultProxy

    url = f"s3://{s3_bucket}/multi"
    convert(str(DATA / "multi"), url, ConvertConfig(shard_size_mb=0.4, storage_options=s3_server))
    proxy = FaultProxy(int(s3_server["client_kwargs"]["endpoint_url"].rsplit(":", 1)[1]))
    options = {
        **s3_server,
        "client_kwargs": {"endpoint_url": proxy.endpoint},
        "config_kwargs": {"connect_timeout": 1, "read_timeout": 1, "retries": {"max_attempts": 1}},
    }
    # One episode in the pool: the next fetch starts exactly when the episode changes, so each fault,
    # armed at an episode change, hits the next fetch.
    faults = [
        lambda: proxy.drop_after(20_000),
        lambda: proxy.reject(3),
        lambda: proxy.stall(3.0),
        lambda: (proxy.down(), threading.Timer(2.0, proxy.up).start()),
    ]
    try:
        dataset = ShardedLeRobotDataset(url, seed=4, episode_pool_size=1, storage_options=options)
        seen, episodes = [], []
        for item in dataset:
            seen.append(int(item["index"]))
            if not episodes or episodes[-1] != int(item["episode_index"]):
                episodes.append(int(item["episode_index"]))
                if 2 <= len(episodes) < 2 + len(faults):
                    faults[len(episodes) - 2]()
        assert sorted(seen) == list(range(1852))  # every frame exactly once
        stats = dict(proxy.stats)
        assert stats["dropped"] >= 1, stats
        assert stats["rejected"] == 3, stats
        assert stats["stalled"] == 1, stats
        assert stats["refused"] >= 1, stats
    finally:
        proxy.close()
