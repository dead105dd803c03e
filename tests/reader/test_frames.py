"""EpisodeDecoder: frames by index, the last window's frames reused, and items never share them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
from helpers import read_frame_code

from lerobot_wds import ShardedLeRobotDataset
from lerobot_wds.reader.episodes import EpisodeSource
from lerobot_wds.reader.frames import EpisodeDecoder


def first_episode_decoder(url: str, keep_last_window: bool) -> tuple[EpisodeDecoder, int]:
    dataset = ShardedLeRobotDataset(url)
    episode = EpisodeSource(dataset.url, dataset.video_keys, dataset.features).fetch(dataset.entries[0])
    decoder = EpisodeDecoder(episode.videos[dataset.video_keys[0]], "cpu", keep_last_window)
    return decoder, episode.entry.episode_index


def test_overlapping_windows_reuse_exact_frames(converted: dict[str, str]) -> None:
    decoder, episode = first_episode_decoder(converted["tiny"], keep_last_window=True)
    reference, _ = first_episode_decoder(converted["tiny"], keep_last_window=False)
    decoded: list[int] = []
    get_frames_at = decoder.decoder.get_frames_at
    decoder.decoder.get_frames_at = lambda indices: decoded.extend(indices) or get_frames_at(indices=indices)  # type: ignore[method-assign]
    for window in ([0, 1], [1, 2], [2, 2, 3], [0, 3, 3], [5]):
        frames = decoder.frames(np.array(window))
        assert [read_frame_code(f.numpy()) for f in frames] == [(i, episode, 0) for i in window]
        fresh = torch.stack([reference.decoder.get_frame_at(i).data for i in window])
        assert torch.equal(torch.stack(frames), fresh)
    assert decoded == [0, 1, 2, 3, 0, 5]  # frames of the previous window are not decoded again
    assert decoder._last == {}  # a one-frame window shares nothing with the next: nothing held


def test_without_keeping_nothing_stays_held(converted: dict[str, str]) -> None:
    decoder, episode = first_episode_decoder(converted["tiny"], keep_last_window=False)
    frames = decoder.frames(np.array([0, 0, 1]))  # a padded window: the repeated frame is decoded once
    assert [read_frame_code(f.numpy()) for f in frames] == [(0, episode, 0), (0, episode, 0), (1, episode, 0)]
    assert decoder._last == {}


def test_in_place_transforms_do_not_reach_the_next_window(converted: dict[str, str]) -> None:
    """Forward order reuses the previous window's frames: an in-place transform of an item's frames
    (here on uint8) must not change what the next item's window shows."""
    seen: list[list[tuple[int, int, int]]] = []

    def zero_in_place(frames: torch.Tensor) -> torch.Tensor:
        seen.append([read_frame_code(f.numpy()) for f in frames.reshape(-1, *frames.shape[-3:])])
        return frames.zero_()

    probe = ShardedLeRobotDataset(converted["tiny"])
    camera = probe.camera_keys[0]
    dataset = ShardedLeRobotDataset(
        converted["tiny"],
        delta_timestamps={camera: [-1 / probe.fps, 0.0]},
        frame_order="forward",
        return_uint8=True,
        image_transforms=zero_in_place,
        episode_pool_size=1,
        shuffle=False,
    )
    items = list(dataset)
    camera_number = probe.camera_keys.index(camera)
    windows = [codes for codes in seen if codes[0][2] == camera_number]
    assert len(windows) == len(items)
    for item, codes in zip(items, windows, strict=True):
        frame, episode = int(item["frame_index"]), int(item["episode_index"])
        assert codes == [(max(frame - 1, 0), episode, camera_number), (frame, episode, camera_number)]
        assert not item[camera].any()


def test_a_training_process_with_workers_never_loads_torchcodec(converted: dict[str, str]) -> None:
    """torchcodec (115 MB of RSS) is imported by the decoding process only: a DataLoader worker here."""
    script = f"""
import sys
from torch.utils.data import DataLoader
from lerobot_wds import ShardedLeRobotDataset
dataset = ShardedLeRobotDataset({converted["tiny"]!r}, batch_size=4, return_uint8=True)
batch = next(iter(DataLoader(dataset, batch_size=None, num_workers=1)))
assert batch[dataset.camera_keys[0]].shape[0] == 4
print("torchcodec" in sys.modules)
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"


def test_decoding_does_not_import_dynamo_and_dynamo_still_works(converted: dict[str, str]) -> None:
    """torchcodec touches ``torch._dynamo`` at import (73 MB, 2 s per decoding process); the reader
    imports it behind a stand-in. Afterwards the real dynamo must load and compile as usual, and the
    stand-in must serve anything else from the real module (another thread using dynamo meanwhile)."""
    script = f"""
import sys
import torch
from lerobot_wds import ShardedLeRobotDataset
from lerobot_wds._torchcodec import _DynamoStandIn
dataset = ShardedLeRobotDataset({converted["tiny"]!r}, batch_size=4, return_uint8=True)
batch = next(iter(dataset))
assert batch[dataset.camera_keys[0]].shape[0] == 4 and "torchcodec" in sys.modules
print("torch._dynamo" in sys.modules, "sympy" in sys.modules, "_dynamo" in vars(torch))
compiled = torch.compile(lambda x: x * 2, backend="eager")
print(compiled(torch.ones(2)).tolist(), torch._dynamo.disallow_in_graph.__module__)
print(_DynamoStandIn().config is sys.modules["torch._dynamo.config"])
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert completed.stdout.split("\n")[:3] == [
        "False False False",
        "[2.0, 2.0] torch._dynamo.decorators",
        "True",
    ]
