"""Whole epochs through real DataLoaders: every frame once, exact windows and frames, order control."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
import torch
import webdataset as wds
from helpers import read_frame_code
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from lerobot_wds import ShardedLeRobotDataset
from lerobot_wds.reader.order import WorkerInfo, plan_slot

FPS = {"tiny": 30, "multi": 15, "h264": 10}


def short_windows(name: str, camera_keys: list[str]) -> dict[str, list[float]]:
    fps = FPS[name]
    return {"action": [i / fps for i in range(16)], camera_keys[0]: [-1 / fps, 0.0]}


def make(url: str, name: str, **options: Any) -> ShardedLeRobotDataset:
    probe = ShardedLeRobotDataset(url)
    return ShardedLeRobotDataset(url, delta_timestamps=short_windows(name, probe.camera_keys), **options)


def check_batch(batch: dict[str, Any], dataset: ShardedLeRobotDataset, lengths: dict[int, int]) -> None:
    """Every value of every sample against what the fixture's self-describing data says it must be."""
    cameras = dataset.camera_keys
    for row in range(len(batch["index"])):
        episode, frame = int(batch["episode_index"][row]), int(batch["frame_index"][row])
        length = lengths[episode]
        wanted = frame + np.arange(16)
        clamped = np.clip(wanted, 0, length - 1)
        assert batch["action"][row][:, 0].tolist() == (episode * 10000 + clamped).tolist()
        assert batch["action_is_pad"][row].tolist() == (wanted >= length).tolist()
        assert batch["observation.state"][row][2] == frame
        window = batch[cameras[0]][row]
        assert window.dtype == torch.uint8
        assert [read_frame_code(f.numpy()) for f in window] == [
            (max(frame - 1, 0), episode, 0),
            (frame, episode, 0),
        ]
        assert batch[f"{cameras[0]}_is_pad"][row].tolist() == [frame == 0, False]
        for number, key in enumerate(cameras[1:], start=1):
            assert read_frame_code(batch[key][row].numpy()) == (frame, episode, number)


def episode_lengths(dataset: ShardedLeRobotDataset) -> dict[int, int]:
    return {e.episode_index: e.num_frames for e in dataset.entries}


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("name", ["multi", "h264"])
def test_epoch_covers_every_frame_once_with_exact_windows(
    converted: dict[str, str], name: str, num_workers: int
) -> None:
    dataset = make(converted[name], name, return_uint8=True, seed=3)
    lengths = episode_lengths(dataset)
    seen: list[int] = []
    for batch in DataLoader(dataset, batch_size=32, num_workers=num_workers):
        check_batch(batch, dataset, lengths)
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(dataset.num_frames))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_forward_frame_order_is_exact_and_moves_forward(converted: dict[str, str], num_workers: int) -> None:
    dataset = make(converted["multi"], "multi", return_uint8=True, frame_order="forward")
    lengths = episode_lengths(dataset)
    seen: list[int] = []
    last_frame: dict[tuple[int, int], int] = {}  # (reader, episode) -> frame
    distinct = []
    for number, batch in enumerate(DataLoader(dataset, batch_size=32, num_workers=num_workers)):
        check_batch(batch, dataset, lengths)
        reader = number % max(num_workers, 1)  # the DataLoader takes batches from its workers in turn
        for episode, frame in zip(
            batch["episode_index"].tolist(), batch["frame_index"].tolist(), strict=True
        ):
            # every reader reads its frames of an episode front to back (one reader's part of an
            # episode shared by two readers may start past frame 0)
            previous = last_frame.get((reader, episode))
            assert previous is None or frame == previous + 1
            last_frame[reader, episode] = frame
        distinct.append(len(set(batch["episode_index"].tolist())))
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(dataset.num_frames))
    assert np.mean(distinct[:-1]) > 8  # the pick among episodes stays random


def order(dataset: ShardedLeRobotDataset) -> list[int]:
    return [int(item["index"]) for item in dataset]


def test_order_is_reproducible_and_changes_with_epoch_and_seed(converted: dict[str, str]) -> None:
    url = converted["tiny"]
    first = ShardedLeRobotDataset(url, seed=7, episode_pool_size=4)
    again = ShardedLeRobotDataset(url, seed=7, episode_pool_size=4)
    assert order(first) == order(again)
    epoch_0 = order(first)
    first.set_epoch(1)
    epoch_1 = order(first)
    assert epoch_1 != epoch_0
    assert sorted(epoch_1) == sorted(epoch_0) == list(range(first.num_frames))
    assert order(ShardedLeRobotDataset(url, seed=8, episode_pool_size=4)) != epoch_0


def test_ranks_yield_equal_counts_and_cover_the_dataset(converted: dict[str, str]) -> None:
    url = converted["multi"]
    datasets = [ShardedLeRobotDataset(url, rank=r, world_size=3, seed=1) for r in range(3)]
    parts = [order(d) for d in datasets]
    assert len({len(p) for p in parts}) == 1  # the DDP contract: same samples on every rank
    everything = [i for part in parts for i in part]
    assert set(everything) == set(range(1852))
    repeated = sum(d._open_stream(d.worker_info()).num_samples for d in datasets) - 1852
    assert len(everything) - 1852 == repeated < 120  # repeats pad the smaller ranks, counted exactly


def test_without_shuffle_frames_come_in_episode_order(converted: dict[str, str]) -> None:
    dataset = ShardedLeRobotDataset(converted["tiny"], shuffle=False)
    assert order(dataset) == list(range(dataset.num_frames))


def test_batches_mix_many_episodes(converted: dict[str, str]) -> None:
    dataset = ShardedLeRobotDataset(converted["multi"], seed=0)
    distinct = [len(set(b["episode_index"].tolist())) for b in DataLoader(dataset, batch_size=32)]
    assert np.mean(distinct[:-1]) > 12  # 24 episodes in the pool: ~17 expected for batches of 32
    single = ShardedLeRobotDataset(converted["multi"], seed=0, episode_pool_size=1)
    per_batch = [len(set(b["episode_index"].tolist())) for b in DataLoader(single, batch_size=32)]
    assert max(per_batch) <= 2  # a pool of one episode: at most an episode boundary per batch


def test_frame_buffer_caps_the_pool(converted: dict[str, str]) -> None:
    def mean_distinct(dataset: ShardedLeRobotDataset) -> float:
        return float(
            np.mean([len(set(b["episode_index"].tolist())) for b in DataLoader(dataset, batch_size=32)])
        )

    dataset = ShardedLeRobotDataset(converted["multi"], seed=0, frame_shuffle_buffer_size=100)
    assert mean_distinct(dataset) < mean_distinct(ShardedLeRobotDataset(converted["multi"], seed=0)) / 2
    assert sorted(order(dataset)) == list(range(1852))


def test_episode_selection(converted: dict[str, str]) -> None:
    dataset = ShardedLeRobotDataset(converted["multi"], episodes=[3, 5])
    counts = Counter(int(item["episode_index"]) for item in dataset)
    assert counts == {3: dataset.entries[0].num_frames, 5: dataset.entries[1].num_frames}
    with pytest.raises(ValueError, match=r"episodes \[99\] are not in the manifest"):
        ShardedLeRobotDataset(converted["multi"], episodes=[99])


@pytest.mark.parametrize("loader_type", ["webloader", "stateful"])
def test_other_loaders(converted: dict[str, str], loader_type: str) -> None:
    dataset = make(converted["tiny"], "tiny")
    if loader_type == "webloader":
        loader: Any = wds.WebLoader(dataset, batch_size=16, num_workers=2)
    else:
        loader = StatefulDataLoader(dataset, batch_size=16, num_workers=2)
    seen = [i for batch in loader for i in batch["index"].tolist()]
    assert sorted(seen) == list(range(224))


def test_float_frames_and_metadata(converted: dict[str, str]) -> None:
    dataset = make(converted["tiny"], "tiny")
    item = next(iter(dataset))
    frames = item["observation.images.front"]
    assert frames.dtype == torch.float32
    assert frames.shape == (2, 3, 64, 96)
    assert 0.0 <= float(frames.min()) <= float(frames.max()) <= 1.0
    assert dataset.fps == 30
    assert dataset.num_episodes == 6
    assert dataset.meta.tasks[0] == "pick up the red cube and place it in the bin"
    assert "action" in dataset.meta.stats
    assert dataset.meta.info["codebase_version"] == "v3.0"


def test_timing_stats_sum_the_workers_counters(converted: dict[str, str]) -> None:
    dataset = ShardedLeRobotDataset(converted["multi"], seed=3, prefetch_bytes=1)
    assert sum(1 for _ in DataLoader(dataset, batch_size=16, num_workers=2)) == 116
    stats = dataset.timing_stats()  # read in this process; counted in the two workers
    assert stats["items"] == 1852
    readers = [WorkerInfo(worker=w, num_workers=2) for w in range(2)]
    parts = sum(len(plan_slot(dataset.entries, who, seed=3, epoch=0, shuffle=True).parts) for who in readers)
    assert parts == 25  # an episode at the boundary of the workers' frame ranges is read by both
    assert stats["episodes"] == parts
    assert stats["requests"] == parts  # one GET per episode and reader, never per frame
    assert stats["decode_s"] > 0
    assert stats["fetch_s"] > 0
    assert 0 <= stats["fetch_waits"] <= 24


def test_stream_is_deprecated(converted: dict[str, str]) -> None:
    dataset = ShardedLeRobotDataset(converted["tiny"])
    with pytest.warns(DeprecationWarning, match=r"stream\(\) is internal"):
        stream = dataset.stream(dataset.worker_info())
    assert len(list(stream)) == dataset.num_frames
