"""EpisodeDecoder: frames by index, remembered frames reused, and the caller owns what it gets."""

from __future__ import annotations

import numpy as np
import torch
from helpers import read_frame_code

from lerobot_wds import ShardedLeRobotDataset
from lerobot_wds.reader.episodes import EpisodeSource
from lerobot_wds.reader.frames import EpisodeDecoder


def first_episode_decoder(url: str) -> tuple[EpisodeDecoder, int]:
    dataset = ShardedLeRobotDataset(url)
    episode = EpisodeSource(dataset.url, dataset.camera_keys).fetch(dataset.entries[0])
    return EpisodeDecoder(episode.videos[dataset.camera_keys[0]], "cpu"), episode.entry.episode_index


def test_overlapping_windows_reuse_exact_frames(converted: dict[str, str]) -> None:
    decoder, episode = first_episode_decoder(converted["tiny"])
    reference, _ = first_episode_decoder(converted["tiny"])
    for window in ([0, 1], [1, 2], [2, 2, 3], [0, 3, 3], [5]):
        frames = decoder.frames(np.array(window))
        assert [read_frame_code(f.numpy()) for f in frames] == [(i, episode, 0) for i in window]
        fresh = torch.stack([reference.decoder.get_frame_at(i).data for i in window])
        assert torch.equal(frames, fresh)


def test_in_place_changes_to_a_window_do_not_reach_the_next(converted: dict[str, str]) -> None:
    decoder, episode = first_episode_decoder(converted["tiny"])
    decoder.frames(np.array([0, 1])).zero_()  # e.g. an in-place transform on return_uint8 frames
    frames = decoder.frames(np.array([1, 2]))  # frame 1 comes from the remembered frames
    assert [read_frame_code(f.numpy()) for f in frames] == [(1, episode, 0), (2, episode, 0)]
