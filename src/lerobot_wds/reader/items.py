"""Build the item ``LeRobotDataset.__getitem__`` returns, from an episode held encoded and a frame index."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate
from torch.utils.data._utils.collate import default_collate_fn_map

from ..format import MM_PER_METRE, ShardFormatError
from ..meta import DatasetMeta, recorded_depth_unit
from . import arena
from .config import ReaderConfig
from .depth import DepthQuantization
from .episodes import Episode
from .frames import DecoderCache
from .telemetry import Counters
from .windows import delta_indices, window_indices


class Item(dict[str, Any]):
    """An item: a plain dict of LeRobot's keys and values. Its type only tells torch's
    ``default_collate`` (registered in ``default_collate_fn_map``, torch's documented way to extend it)
    to batch items with :func:`.arena.collate`: the same batch, built in one recycled buffer. So a
    plain ``DataLoader(dataset, batch_size=32, num_workers=2)`` sends each batch out of its worker as
    one shared-memory buffer instead of one fresh buffer per tensor."""

    __slots__ = ()


def _collate_items(items: list[Item], *, collate_fn_map: Mapping[Any, Any] | None = None) -> dict[str, Any]:
    return arena.collate(items)


default_collate_fn_map[Item] = _collate_items


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemSpec:
    """What every item holds: the window offsets per key and how camera frames are returned."""

    video_keys: list[str]  # video features, decoded from the episode's mp4 segments
    deltas: Mapping[str, np.ndarray]  # key -> offsets in frames (LeRobot's delta_indices)
    tasks: Mapping[int, str]  # task_index -> task string
    return_uint8: bool = False
    channels_last: bool = False  # frames (..., C, H, W) laid out (..., H, W, C) in memory
    image_transforms: Callable[[torch.Tensor], torch.Tensor] | None = None
    image_keys: frozenset[str] = frozenset()  # image features stored in the rows (PNG/JPEG bytes)
    # depth maps stored as video: float32 in depth_unit, never transformed nor uint8 (LeRobot 0.6.1)
    depth: Mapping[str, DepthQuantization] = field(default_factory=dict)
    # depth maps stored in the rows: key -> the unit they were recorded in (None: unknown, left as is)
    depth_images: Mapping[str, str | None] = field(default_factory=dict)
    depth_unit: str = "mm"  # "mm" or "m": LeRobot's depth_output_unit
    keep_float64: bool = False  # float64 features stay float64 instead of LeRobot's float32


def item_spec(meta: DatasetMeta, video_keys: list[str], fps: int, config: ReaderConfig) -> ItemSpec:
    """What a dataset's items hold, from its metadata and the reader's options."""
    depth_videos = [key for key in meta.depth_keys if key in meta.video_keys]
    depth_images = [key for key in meta.depth_keys if key in meta.image_keys]
    return ItemSpec(
        video_keys=video_keys,
        deltas=delta_indices(config.delta_timestamps or {}, fps),
        tasks=meta.tasks,
        return_uint8=bool(config.return_uint8),
        channels_last=bool(config.channels_last),
        image_transforms=config.image_transforms,
        image_keys=frozenset(meta.image_keys),
        depth={key: DepthQuantization.of(meta.features[key]) for key in depth_videos},
        depth_images={key: recorded_depth_unit(meta.features[key]) for key in depth_images},
        depth_unit=config.depth_output_unit,
        keep_float64=config.keep_float64,
    )


def build_item(
    episode: Episode,
    frame_index: int,
    spec: ItemSpec,
    decoders: DecoderCache,
    counters: Counters | None = None,
) -> Item:
    """Every feature at ``frame_index`` (windows + ``{key}_is_pad`` for keys in ``spec.deltas``), ``task``."""
    item = _tabular(episode, frame_index, spec)
    started = time.perf_counter()
    for key in spec.video_keys:
        indices, is_pad = _camera_indices(episode, frame_index, key, spec)
        if is_pad is not None:
            item[f"{key}_is_pad"] = torch.from_numpy(is_pad)
        item[key] = _camera_frames(episode, indices, key, spec, decoders)
    _count(counters, started, 1)
    item["task"] = spec.tasks[int(item["task_index"])]
    return item


def build_batch(
    samples: Sequence[tuple[Episode, int]],
    spec: ItemSpec,
    decoders: DecoderCache,
    counters: Counters | None = None,
    pool: Executor | None = None,
) -> dict[str, Any]:
    """``default_collate([build_item(...) for each sample])``, with camera frames decoded straight into
    the batch tensors: each frame is written once instead of being converted, then copied by the
    collate. The batch's CPU tensors are views of one buffer (:mod:`.arena`), in shared memory inside a
    DataLoader worker, so the batch reaches the training process in one piece.

    With a thread ``pool`` (and no image transforms), the rows of different episodes are decoded on its
    threads, each episode's rows in order on one thread (a decoder is not thread-safe)."""
    tabular = [_tabular(episode, frame_index, spec) for episode, frame_index in samples]
    started = time.perf_counter()
    windows: dict[str, list[np.ndarray]] = {}
    pads: dict[str, np.ndarray] = {}
    for key in spec.video_keys:
        pairs = [_camera_indices(episode, frame_index, key, spec) for episode, frame_index in samples]
        windows[key] = [indices for indices, _ in pairs]
        if key in spec.deltas:
            pads[key] = np.stack([is_pad for _, is_pad in pairs if is_pad is not None])
    # The first sample's frames give each camera's shape and dtype (image transforms may change them).
    first_episode = samples[0][0]
    firsts = {k: _camera_frames(first_episode, w[0], k, spec, decoders) for k, w in windows.items()}
    specs: dict[str, arena.TensorSpec] = {}
    for key, value in tabular[0].items():
        if isinstance(value, torch.Tensor):
            specs[key] = arena.TensorSpec((len(samples), *value.shape), value.dtype)
    channels_last = {
        key: spec.channels_last and first.ndim >= 3 and key not in spec.depth for key, first in firsts.items()
    }
    for key, first in firsts.items():  # (image transforms may return fewer dimensions than C, H, W)
        if key in pads:
            specs[f"{key}_is_pad"] = arena.TensorSpec(pads[key].shape, torch.bool)
        if first.device.type == "cpu":
            specs[key] = arena.TensorSpec((len(samples), *first.shape), first.dtype, channels_last[key])
    tensors, lease = arena.allocate(specs)
    batch: dict[str, Any] = {}
    for key in tabular[0]:
        values = [item[key] for item in tabular]
        if key in tensors:
            batch[key] = tensors[key]
            np.stack([value.numpy() for value in values], out=batch[key].numpy())
        else:
            batch[key] = default_collate(values)
    for key, first in firsts.items():
        if key in pads:
            batch[f"{key}_is_pad"] = tensors[f"{key}_is_pad"]
            np.copyto(batch[f"{key}_is_pad"].numpy(), pads[key])
        frames = tensors.get(key)
        if frames is None:  # frames decoded on a GPU stay there
            frames = arena.empty((len(samples), *first.shape), first.dtype, first.device, channels_last[key])
        _copy(frames[0], first)
        _decode_rows(samples, windows[key], key, spec, decoders, frames, pool)
        batch[key] = frames
    _count(counters, started, len(samples))
    batch["task"] = [spec.tasks[int(i)] for i in batch["task_index"]]
    return arena.deliver(batch, lease)


def _decode_rows(
    samples: Sequence[tuple[Episode, int]],
    windows: list[np.ndarray],
    key: str,
    spec: ItemSpec,
    decoders: DecoderCache,
    frames: torch.Tensor,
    pool: Executor | None,
) -> None:
    """Rows 1.. of ``frames`` (row 0 is written): on ``pool``'s threads, one task per episode."""

    def decode(rows: list[int]) -> None:
        for row in rows:
            _camera_frames(samples[row][0], windows[row], key, spec, decoders, out=frames[row])

    by_episode: dict[int, list[int]] = {}
    for row in range(1, len(samples)):
        by_episode.setdefault(samples[row][0].entry.episode_index, []).append(row)
    if pool is None or spec.image_transforms is not None or len(by_episode) < 2:
        decode(list(range(1, len(samples))))
        return
    for task in [pool.submit(decode, rows) for rows in by_episode.values()]:
        task.result()  # raises a task's error; every task ends before the batch is handed out


def _tabular(episode: Episode, frame_index: int, spec: ItemSpec) -> Item:
    item = Item()
    num_frames = episode.num_frames
    for key, column in episode.columns.items():
        if key in spec.deltas:
            indices, is_pad = window_indices(num_frames, frame_index, spec.deltas[key])
            if key in spec.image_keys:
                item[key] = torch.stack([_stored_image(episode, i, key, spec) for i in indices])
            else:
                item[key] = lerobot_value(column[indices], spec.keep_float64, key)
            item[f"{key}_is_pad"] = torch.from_numpy(is_pad)
        elif key in spec.image_keys:
            item[key] = _stored_image(episode, frame_index, key, spec)
        else:
            item[key] = lerobot_value(column[frame_index], spec.keep_float64, key)
    return item


# LeRobot's 16-bit depth modes: returned as float32 (1, H, W) in native units, not scaled
_UINT16_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def _stored_image(episode: Episode, frame_index: int, key: str, spec: ItemSpec) -> torch.Tensor:
    """An image feature stored in the rows (``{"bytes", "path"}``) as LeRobot returns it: torchvision's
    ``ToTensor`` of the decoded PIL image (float32 (C, H, W) in [0, 1] for 8-bit images, uint8 with
    ``return_uint8``), 16-bit and float depth as float32 (1, H, W), in millimetres and never transformed;
    other images then go through ``image_transforms``, as videos do."""
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
                frames = torch.from_numpy(np.array(image, dtype=np.float32))[None]
            else:
                frames = _channels_first(np.array(image.convert("L") if image.mode == "1" else image))
    except OSError as exc:  # PIL.UnidentifiedImageError and truncated files
        raise ShardFormatError(
            f"{where}: image bytes PIL cannot read ({exc}); expected PNG/JPEG bytes"
        ) from exc
    if frames.dtype == torch.uint8 and not spec.return_uint8:
        frames = _to_unit_float(frames)
    if key in spec.depth_images:  # LeRobot: in depth_output_unit, never transformed
        recorded = spec.depth_images[key]
        if recorded is None or recorded == spec.depth_unit:
            return frames
        return frames * MM_PER_METRE if recorded == "m" else frames / MM_PER_METRE  # LeRobot's ops
    return spec.image_transforms(frames) if spec.image_transforms is not None else frames


def _channels_first(array: np.ndarray) -> torch.Tensor:
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _count(counters: Counters | None, started: float, items: int) -> None:
    if counters is not None:
        counters.add(decode_s=time.perf_counter() - started, items=items)  # from decode threads too


def item_dtype(dtype: np.dtype[Any], keep_float64: bool = False) -> np.dtype[Any]:
    """The dtype LeRobot returns for values stored as ``dtype``: its ``hf_transform_to_torch`` builds
    every non-camera value with ``torch.tensor`` of Python scalars, so floats (float16/32/64) become
    float32 (float64 rounded to nearest), integers (int8..int64, uint8..uint64) int64 and bools bool.
    With ``keep_float64``, float64 stays float64 (an opt-out of LeRobot's rounding)."""
    if dtype.kind == "f":
        return np.dtype(np.float64) if keep_float64 and dtype == np.float64 else np.dtype(np.float32)
    if dtype.kind in "iu":
        return np.dtype(np.int64)
    return dtype


def lerobot_value(value: Any, keep_float64: bool = False, key: str = "") -> Any:
    """One row's (or a window's) stored value as LeRobot's item holds it: numbers as tensors of
    :func:`item_dtype`, strings as ``str``, anything else (ragged or nullable lists) as Python lists."""
    if isinstance(value, str):
        return value
    array = np.asarray(value)
    if array.dtype == object:
        return array.tolist()  # ragged or nullable lists: no LeRobot feature has a shape for them
    if array.dtype.kind in "US":
        return array.tolist()
    dtype = item_dtype(array.dtype, keep_float64)
    if array.dtype == np.uint64 and array.size and int(array.max()) > np.iinfo(np.int64).max:
        raise ValueError(
            f"{key}: uint64 value {int(array.max())} is past int64's range; expected values LeRobot's "
            "torch.tensor can hold (it raises an overflow on them)"
        )
    return torch.from_numpy(np.array(array, dtype=dtype))  # a copy: items never alias the episode


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
    written into ``out`` when given. Each frame is written once, converted on the way."""
    window = decoders.get(episode, key).frames(indices)
    if key in spec.depth:
        depth = spec.depth[key].dequantize(torch.stack(window), spec.depth_unit)
        depth = depth[0] if len(window) == 1 else depth  # LeRobot squeezes one frame
        return depth if out is None else _copy(out, depth)
    frame_shape = tuple(window[0].shape)
    shape = frame_shape if len(window) == 1 else (len(window), *frame_shape)  # LeRobot squeezes one frame
    dtype = torch.uint8 if spec.return_uint8 else torch.float32
    if spec.image_transforms is None and out is not None:
        _write_frames(window, out if len(window) > 1 else out.unsqueeze(0))
        return out
    frames = arena.empty(shape, dtype, window[0].device, spec.channels_last)
    _write_frames(window, frames if len(window) > 1 else frames.unsqueeze(0))
    if spec.image_transforms is not None:
        frames = spec.image_transforms(frames)
    return frames if out is None else _copy(out, frames)


def _copy(out: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """``out.copy_(frames)``, by numpy on CPU (one thread, see :func:`_write_frames`)."""
    if out.device.type == "cpu" and out.dtype == frames.dtype and out.dtype != torch.bfloat16:
        np.copyto(out.numpy(), frames.numpy())
        return out
    return out.copy_(frames)


def _write_frames(window: list[torch.Tensor], target: torch.Tensor) -> None:
    """Copy uint8 frames into the rows of ``target``, converted to [0, 1] if ``target`` is float32
    (bit-identical to LeRobot's ``frames.type(torch.float32) / 255``: IEEE float32 division).

    On CPU numpy does it, one pass per frame and never on another thread: torch splits a frame above
    its 32k-element grain size across its intra-op threads, and in the main process of a busy 2-core
    machine such ops waited ~13 ms for a descheduled thread instead of taking ~15 us (py-spy:
    41% of `num_workers=0` was OpenMP threads waiting, in the stack and clone this replaced).
    """
    if target.device.type != "cpu":
        for row, frame in zip(target, window, strict=True):
            if target.dtype == torch.uint8:
                row.copy_(frame)
            else:
                torch.div(frame, 255.0, out=row)
        return
    rows = target.numpy()
    for row, frame in zip(rows, window, strict=True):
        if rows.dtype == np.uint8:
            np.copyto(row, frame.numpy())
        else:
            np.divide(frame.numpy(), np.float32(255.0), out=row, dtype=np.float32)


def _to_unit_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``(C, H, W)`` -> float32 in [0, 1], as :func:`_write_frames` writes it."""
    out = torch.empty(frames.shape, dtype=torch.float32, device=frames.device)
    _write_frames([frames], out.view(1, *frames.shape))
    return out
