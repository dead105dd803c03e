"""Build the item ``LeRobotDataset.__getitem__`` returns, from an episode held encoded and a frame index."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .episodes import Episode
from .frames import DecoderCache
from .windows import window_indices


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemSpec:
    """What every item holds: the window offsets per key and how camera frames are returned."""

    camera_keys: list[str]
    deltas: Mapping[str, np.ndarray]  # key -> offsets in frames (LeRobot's delta_indices)
    tasks: Mapping[int, str]  # task_index -> task string
    return_uint8: bool = False
    image_transforms: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass(slots=True)
class TimingStats:
    """Seconds spent decoding video frames (and items built) in this process."""

    decode_s: float = 0.0
    items: int = 0


def build_item(
    episode: Episode,
    frame_index: int,
    spec: ItemSpec,
    decoders: DecoderCache,
    timing: TimingStats | None = None,
) -> dict[str, Any]:
    """Every feature at ``frame_index`` (windows + ``{key}_is_pad`` for keys in ``spec.deltas``), ``task``."""
    item: dict[str, Any] = {}
    num_frames = episode.num_frames
    for key, column in episode.columns.items():
        if key in spec.deltas:
            indices, is_pad = window_indices(num_frames, frame_index, spec.deltas[key])
            item[key] = _values(column[indices])
            item[f"{key}_is_pad"] = torch.from_numpy(is_pad)
        else:
            item[key] = _values(np.array(column[frame_index]))
    started = time.perf_counter()
    for key in spec.camera_keys:
        item.update(_camera(episode, frame_index, key, spec, decoders))
    if timing is not None:
        timing.decode_s += time.perf_counter() - started
        timing.items += 1
    item["task"] = spec.tasks[int(item["task_index"])]
    return item


def _values(array: np.ndarray) -> Any:
    """Numbers as tensors; anything else (image features stored in parquet: ``{"bytes", "path"}``) as is."""
    if array.dtype == object:
        return array.tolist()  # LeRobot would decode these to tensors: not done yet (no fixture has them)
    return torch.from_numpy(array)


def _camera(
    episode: Episode, frame_index: int, key: str, spec: ItemSpec, decoders: DecoderCache
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if key in spec.deltas:
        indices, is_pad = window_indices(episode.num_frames, frame_index, spec.deltas[key])
        out[f"{key}_is_pad"] = torch.from_numpy(is_pad)
    else:
        indices = np.array([frame_index])
    frames = decoders.get(episode, key).frames(indices)
    if len(indices) == 1:
        frames = frames[0]  # LeRobot squeezes a single frame to (C, H, W)
    if not spec.return_uint8:
        frames = _to_unit_float(frames)
    if spec.image_transforms is not None:
        frames = spec.image_transforms(frames)
    out[key] = frames
    return out


def _to_unit_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [0, 1], bit-identical to LeRobot's ``frames.type(torch.float32) / 255``.

    On CPU the division runs in numpy (one pass, one allocation, IEEE float32 division like torch's):
    torch splits a frame above its 32k-element grain size across its intra-op threads, and on a busy
    machine each such op waited ~13 ms for a descheduled thread instead of taking ~15 us (measured in
    the main process of `num_workers=0`, 2 cores, load 5; DataLoader workers run with 1 thread).
    """
    if frames.device.type != "cpu":
        return frames.to(torch.float32).div_(255.0)
    out = np.divide(frames.numpy(), np.float32(255.0), dtype=np.float32)
    return torch.from_numpy(out)
