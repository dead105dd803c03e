"""Decode on exit: only a window's frames, by index, with one torchcodec decoder per (episode, camera)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from torchcodec.decoders import VideoDecoder

from .episodes import Episode


@dataclass(slots=True)
class DecoderStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    open: int = 0


class DecoderCache:
    """Decoders of the episodes in the pool, least recently used dropped first beyond ``capacity``.

    The pool calls :meth:`release` when an episode leaves, so with the default capacity (pool size x
    cameras) decoders live exactly as long as their episode's bytes.
    """

    def __init__(self, capacity: int, device: str = "cpu") -> None:
        self.capacity = capacity
        self.device = device
        self._decoders: OrderedDict[tuple[int, str], VideoDecoder] = OrderedDict()
        self.stats = DecoderStats()

    def get(self, episode: Episode, camera_key: str) -> VideoDecoder:
        key = (episode.entry.episode_index, camera_key)
        decoder = self._decoders.get(key)
        if decoder is not None:
            self.stats.hits += 1
            self._decoders.move_to_end(key)
            return decoder
        self.stats.misses += 1
        # seek_mode="exact": x265's open GOPs make approximate seeks return wrong frames.
        decoder = VideoDecoder(episode.videos[camera_key], seek_mode="exact", device=self.device)
        self._decoders[key] = decoder
        while len(self._decoders) > self.capacity:
            self._decoders.popitem(last=False)
            self.stats.evictions += 1
        self.stats.open = len(self._decoders)
        return decoder

    def release(self, episode: Episode) -> None:
        for key in [k for k in self._decoders if k[0] == episode.entry.episode_index]:
            del self._decoders[key]
        self.stats.open = len(self._decoders)


def decode_frames(decoder: VideoDecoder, indices: np.ndarray) -> torch.Tensor:
    """Frames at episode-local ``indices`` as uint8 ``(len(indices), C, H, W)``.

    Frames are addressed by index (never by float seconds, which returned the previous frame for a
    third of an AV1 file's frames); each distinct frame is decoded once, in increasing order.
    """
    if len(indices) == 1 or bool(np.all(np.diff(indices) > 0)):
        return decoder.get_frames_at(indices=indices.tolist()).data  # already distinct and increasing
    unique, inverse = np.unique(indices, return_inverse=True)
    frames = decoder.get_frames_at(indices=unique.tolist()).data
    return frames[torch.from_numpy(inverse.reshape(-1))]
