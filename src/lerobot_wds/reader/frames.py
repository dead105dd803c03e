"""Decode on exit: only a window's frames, by index, with one torchcodec decoder per (episode, camera)."""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from .._torchcodec import video_decoder_class
from .depth import DepthDecoder
from .episodes import Episode


def import_decoder_in_background() -> None:
    """Start importing torchcodec while the first episodes are fetched; :class:`EpisodeDecoder`
    imports it only in the process that decodes."""
    if "torchcodec.decoders" not in sys.modules:
        threading.Thread(target=video_decoder_class, daemon=True).start()


@dataclass(slots=True)
class DecoderStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    open: int = 0


class DecoderCache:
    """Decoders of the episodes in the pool, least recently used dropped first beyond ``capacity``.

    The pool calls :meth:`release` when an episode leaves, so with the default capacity (pool size x
    cameras) decoders live exactly as long as their episode's bytes. ``keep_last_window``: each decoder
    keeps the frames of its last window (for ``frame_order="forward"``, where consecutive windows of an
    episode overlap).
    """

    def __init__(
        self,
        capacity: int,
        device: str = "cpu",
        keep_last_window: bool = False,
        depth_keys: frozenset[str] = frozenset(),
    ) -> None:
        self.capacity = capacity
        self.device = device
        self.keep_last_window = keep_last_window
        self.depth_keys = depth_keys  # depth maps: 12-bit codes by PyAV (torchcodec returns RGB only)
        self._decoders: OrderedDict[tuple[int, str], EpisodeDecoder | DepthDecoder] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = DecoderStats()

    def get(self, episode: Episode, camera_key: str) -> EpisodeDecoder | DepthDecoder:
        """The episode's decoder for ``camera_key``, opened on first use. Safe from several threads as
        long as one (episode, camera) is asked for by one thread at a time (:mod:`.decodeahead`)."""
        key = (episode.entry.episode_index, camera_key)
        with self._lock:
            decoder = self._decoders.get(key)
            if decoder is not None:
                self.stats.hits += 1
                self._decoders.move_to_end(key)
                return decoder
            self.stats.misses += 1
        data = episode.videos[camera_key]
        if camera_key in self.depth_keys:
            decoder = DepthDecoder(data, f"episode {episode.entry.episode_index}, {camera_key}")
        else:
            decoder = EpisodeDecoder(data, self.device, self.keep_last_window)
        with self._lock:
            self._decoders[key] = decoder
            while len(self._decoders) > self.capacity:  # a thread using an evicted one keeps its reference
                self._decoders.popitem(last=False)
                self.stats.evictions += 1
            self.stats.open = len(self._decoders)
        return decoder

    def release(self, episode_index: int) -> None:
        with self._lock:
            for key in [k for k in self._decoders if k[0] == episode_index]:
                del self._decoders[key]
            self.stats.open = len(self._decoders)


class EpisodeDecoder:
    """A torchcodec decoder over one segment, optionally keeping the frames of its last window.

    Windows overlap from one draw to the next when an episode is read forward (``[f-1, f]`` then
    ``[f, f+1]``): a kept frame is reused instead of seeking back and decoding it again. Only frames
    after the window's first are kept (the next window starts one frame later), as views of
    torchcodec's output, which nothing else holds: keeping them copies nothing.
    """

    def __init__(self, data: bytes, device: str, keep_last_window: bool = False) -> None:
        # Imported here, by the process that decodes: torchcodec and its FFmpeg libraries add 40 MB to
        # a process's RSS, which the training process of a DataLoader with workers does not need.
        # seek_mode="exact": x265's open GOPs make approximate seeks return wrong frames.
        self.decoder = video_decoder_class()(data, seek_mode="exact", device=device)
        self.keep_last_window = keep_last_window
        self._last: dict[int, torch.Tensor] = {}

    def frames(self, indices: np.ndarray) -> list[torch.Tensor]:
        """Frames at episode-local ``indices``, each uint8 ``(C, H, W)``; read them, never change them:
        they may be views of one decoded batch and may be handed out again for the next window.

        Frames are addressed by index (never by float seconds, which returned the previous frame for
        a third of an AV1 file's frames); each missing frame is decoded once, in increasing order.
        """
        requested = indices.tolist()
        found = self._last
        missing = sorted(set(requested).difference(found))
        if missing:
            found = found | dict(zip(missing, self.decoder.get_frames_at(indices=missing).data, strict=True))
        window = [found[i] for i in requested]
        if self.keep_last_window:  # what the next frame's window can share with this one
            first = min(requested)
            self._last = {i: frame for i, frame in zip(requested, window, strict=True) if i > first}
        return window
