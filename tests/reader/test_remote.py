"""Streaming from a real S3 server (SeaweedFS on 127.0.0.1): the same items as from local disk."""

from __future__ import annotations

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
