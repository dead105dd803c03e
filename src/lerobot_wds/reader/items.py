"""Build the item ``LeRobotDataset.__getitem__`` returns, from an episode held encoded and a frame index."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info

from ..format import ShardFormatError
from .episodes import Episode
from .frames import DecoderCache
from .windows import window_indices


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemSpec:
    """What every item holds: the window offsets per key and how camera frames are returned."""

    camera_keys: list[str]  # video features, decoded from the episode's mp4 segments
    deltas: Mapping[str, np.ndarray]  # key -> offsets in frames (LeRobot's delta_indices)
    tasks: Mapping[int, str]  # task_index -> task string
    return_uint8: bool = False
    image_transforms: Callable[[torch.Tensor], torch.Tensor] | None = None
    image_keys: frozenset[str] = frozenset()  # image features stored in the rows (PNG/JPEG bytes)


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
    item = _tabular(episode, frame_index, spec)
    started = time.perf_counter()
    for key in spec.camera_keys:
        indices, is_pad = _camera_indices(episode, frame_index, key, spec)
        if is_pad is not None:
            item[f"{key}_is_pad"] = torch.from_numpy(is_pad)
        item[key] = _camera_frames(episode, indices, key, spec, decoders)
    _count(timing, started, 1)
    item["task"] = spec.tasks[int(item["task_index"])]
    return item


def build_batch(
    samples: Sequence[tuple[Episode, int]],
    spec: ItemSpec,
    decoders: DecoderCache,
    timing: TimingStats | None = None,
) -> dict[str, Any]:
    """``default_collate([build_item(...) for each sample])``, with camera frames decoded straight into
    the batch tensors (in shared memory inside a DataLoader worker, as ``default_collate`` allocates
    them): each frame is written once instead of being converted, then copied by the collate."""
    tabular = [_tabular(episode, frame_index, spec) for episode, frame_index in samples]
    batch: dict[str, Any] = default_collate(tabular)
    started = time.perf_counter()
    for key in spec.camera_keys:
        frames: torch.Tensor | None = None
        pads: list[np.ndarray] = []
        for row, (episode, frame_index) in enumerate(samples):
            indices, is_pad = _camera_indices(episode, frame_index, key, spec)
            if is_pad is not None:
                pads.append(is_pad)
            if frames is None:  # shape and dtype from the first sample (image transforms may change them)
                first = _camera_frames(episode, indices, key, spec, decoders)
                frames = _empty((len(samples), *first.shape), first.dtype, first.device)
                frames[0] = first
            else:
                _camera_frames(episode, indices, key, spec, decoders, out=frames[row])
        if pads:
            batch[f"{key}_is_pad"] = torch.from_numpy(np.stack(pads))
        batch[key] = frames
    _count(timing, started, len(samples))
    batch["task"] = [spec.tasks[int(i)] for i in batch["task_index"]]
    return batch


def _tabular(episode: Episode, frame_index: int, spec: ItemSpec) -> dict[str, Any]:
    item: dict[str, Any] = {}
    num_frames = episode.num_frames
    for key, column in episode.columns.items():
        if key in spec.deltas:
            indices, is_pad = window_indices(num_frames, frame_index, spec.deltas[key])
            if key in spec.image_keys:
                item[key] = torch.stack([_stored_image(episode, i, key, spec) for i in indices])
            else:
                item[key] = _values(column[indices])
            item[f"{key}_is_pad"] = torch.from_numpy(is_pad)
        elif key in spec.image_keys:
            item[key] = _stored_image(episode, frame_index, key, spec)
        else:
            item[key] = _values(np.array(column[frame_index]))
    return item


# LeRobot's 16-bit depth modes: returned as float32 (1, H, W) in native units, not scaled
_UINT16_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def _stored_image(episode: Episode, frame_index: int, key: str, spec: ItemSpec) -> torch.Tensor:
    """An image feature stored in the rows (``{"bytes", "path"}``) as LeRobot returns it: torchvision's
    ``ToTensor`` of the decoded PIL image (float32 (C, H, W) in [0, 1] for 8-bit images, uint8 with
    ``return_uint8``), 16-bit depth as float32 (1, H, W); then ``image_transforms``, as for videos."""
    from PIL import Image

    cell = episode.columns[key][frame_index]
    where = f"episode {episode.entry.episode_index}, frame {frame_index}, {key}"
    if not cell.get("bytes"):
        raise ShardFormatError(
            f"{where}: image cell without bytes (path {cell.get('path')!r}); expected PNG/JPEG bytes"
        )
    try:
        with Image.open(io.BytesIO(cell["bytes"])) as image:
            if image.mode in _UINT16_MODES:
                return torch.from_numpy(np.array(image, dtype=np.float32))[None]
            array = np.array(image.convert("L") if image.mode == "1" else image)
    except OSError as exc:  # PIL.UnidentifiedImageError and truncated files
        raise ShardFormatError(
            f"{where}: image bytes PIL cannot read ({exc}); expected PNG/JPEG bytes"
        ) from exc
    if array.ndim == 2:
        array = array[:, :, None]
    frames = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    if frames.dtype == torch.uint8 and not spec.return_uint8:
        frames = _to_unit_float(frames)
    return spec.image_transforms(frames) if spec.image_transforms is not None else frames


def _count(timing: TimingStats | None, started: float, items: int) -> None:
    if timing is not None:
        timing.decode_s += time.perf_counter() - started
        timing.items += items


def _empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised batch tensor. Inside a DataLoader worker it is in shared memory (as default_collate
    allocates it), so handing it to the main process copies nothing. Otherwise numpy allocates it:
    numpy asks the kernel for transparent huge pages on large arrays, and filling a fresh 59 MB float32
    batch then took 9-16 ms instead of 24 ms with torch.empty (page faults; 2-core VM, THP "madvise").
    Frames decoded on a GPU stay there."""
    if device.type != "cpu":
        return torch.empty(shape, dtype=dtype, device=device)
    if get_worker_info() is not None:
        storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(math.prod(shape))
        return torch.empty(0, dtype=dtype).new(storage).view(shape)
    try:
        return torch.from_numpy(np.empty(shape, dtype=torch.empty(0, dtype=dtype).numpy().dtype))
    except TypeError:  # a dtype numpy lacks (bfloat16 from an image transform)
        return torch.empty(shape, dtype=dtype)


def _values(array: np.ndarray) -> Any:
    """Numbers as tensors; anything else (image features stored in parquet: ``{"bytes", "path"}``) as is."""
    if array.dtype == object:
        return array.tolist()  # LeRobot would decode these to tensors: not done yet (no fixture has them)
    return torch.from_numpy(array)


def _camera_indices(
    episode: Episode, frame_index: int, key: str, spec: ItemSpec
) -> tuple[np.ndarray, np.ndarray | None]:
    """The frames a camera key shows for ``frame_index``, and its pad mask (None without a window)."""
    if key in spec.deltas:
        return window_indices(episode.num_frames, frame_index, spec.deltas[key])
    return np.array([frame_index]), None


def _camera_frames(
    episode: Episode,
    indices: np.ndarray,
    key: str,
    spec: ItemSpec,
    decoders: DecoderCache,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decoded frames, squeezed to ``(C, H, W)`` for one frame, float in [0, 1] unless uint8 is asked for;
    written into ``out`` when given."""
    frames = decoders.get(episode, key).frames(indices)
    if len(indices) == 1:
        frames = frames[0]  # LeRobot squeezes a single frame to (C, H, W)
    if spec.image_transforms is None and out is not None:
        if spec.return_uint8:
            return out.copy_(frames)
        return _to_unit_float(frames, out)
    if not spec.return_uint8:
        frames = _to_unit_float(frames)
    if spec.image_transforms is not None:
        frames = spec.image_transforms(frames)
    return frames if out is None else out.copy_(frames)


def _to_unit_float(frames: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 -> float32 in [0, 1], bit-identical to LeRobot's ``frames.type(torch.float32) / 255``.

    On CPU the division runs in numpy (one pass, one allocation, IEEE float32 division like torch's):
    torch splits a frame above its 32k-element grain size across its intra-op threads, and on a busy
    machine each such op waited ~13 ms for a descheduled thread instead of taking ~15 us (measured in
    the main process of `num_workers=0`, 2 cores, load 5; DataLoader workers run with 1 thread).
    """
    if frames.device.type != "cpu":
        return torch.div(frames, 255.0, out=out) if out is not None else frames.to(torch.float32).div_(255.0)
    if out is not None:
        np.divide(frames.numpy(), np.float32(255.0), out=out.numpy(), dtype=np.float32)
        return out
    return torch.from_numpy(np.divide(frames.numpy(), np.float32(255.0), dtype=np.float32))
