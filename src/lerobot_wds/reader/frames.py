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
        self._decoders: OrderedDict[tuple[int, str], EpisodeDecoder] = OrderedDict()
        self.stats = DecoderStats()

    def get(self, episode: Episode, camera_key: str) -> EpisodeDecoder:
        key = (episode.entry.episode_index, camera_key)
        decoder = self._decoders.get(key)
        if decoder is not None:
            self.stats.hits += 1
            self._decoders.move_to_end(key)
            return decoder
        self.stats.misses += 1
        decoder = EpisodeDecoder(episode.videos[camera_key], self.device)
        self._decoders[key] = decoder
        while len(self._decoders) > self.capacity:
            self._decoders.popitem(last=False)
            self.stats.evictions += 1
        self.stats.open = len(self._decoders)
        return decoder

    def release(self, episode_index: int) -> None:
        for key in [k for k in self._decoders if k[0] == episode_index]:
            del self._decoders[key]
        self.stats.open = len(self._decoders)


class EpisodeDecoder:
    """A torchcodec decoder over one segment, remembering its last few decoded frames.

    Windows overlap from one draw to the next when an episode is read forward (``[f-1, f]`` then
    ``[f, f+1]``): the remembered frame is reused instead of seeking back and decoding it again.
    """

    remembered = 4  # frames kept: enough for the overlap of consecutive short windows

    def __init__(self, data: bytes, device: str) -> None:
        # seek_mode="exact": x265's open GOPs make approximate seeks return wrong frames.
        self.decoder = VideoDecoder(data, seek_mode="exact", device=device)
        self._recent: OrderedDict[int, torch.Tensor] = OrderedDict()

    def frames(self, indices: np.ndarray) -> torch.Tensor:
        """Frames at episode-local ``indices`` as uint8 ``(len(indices), C, H, W)``.

        Frames are addressed by index (never by float seconds, which returned the previous frame for
        a third of an AV1 file's frames); each missing frame is decoded once, in increasing order.
        """
        requested = indices.tolist()
        missing = sorted({i for i in requested if i not in self._recent})
        decoded = self.decoder.get_frames_at(indices=missing).data if missing else None
        if decoded is not None and missing == requested:
            out = decoded  # the common case: nothing remembered, nothing repeated, already in order
            self._recent.update(zip(missing, decoded, strict=True))
        else:
            if decoded is not None:
                self._recent.update(zip(missing, decoded, strict=True))
            out = torch.stack([self._recent[i] for i in requested])
        for index in requested:
            self._recent.move_to_end(index)
        while len(self._recent) > self.remembered:
            self._recent.popitem(last=False)
        if out is decoded:
            # The caller owns `out` and may change it in place (an image transform on uint8 frames):
            # remember copies, at most `remembered` frames, or the next window would see those changes.
            for index in self._recent.keys() & set(missing):
                self._recent[index] = self._recent[index].clone()
        return out
