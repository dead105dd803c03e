"""ReaderConfig: the options of ``ShardedLeRobotDataset``, validated once, with the ``fast`` preset."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from .. import storage
from .resumable import check_choice
from .selection import EpisodeFilter, Split, TaskSelection

FrameOrder = Literal["shuffled", "forward"]
OnError = Literal["raise", "skip"]
DepthUnit = Literal["mm", "m"]
Preset = Literal["lerobot", "fast"]

# What a preset sets, unless the option is given explicitly.
# "lerobot": LeRobot's items (LeRobotDataset[i]: frames shuffled, float32 (C, H, W) in [0, 1]).
# "fast": each frame decoded once per epoch (episodes read forward, the pick among them still random),
#   uint8 frames for normalisation on the GPU (as lerobot-train), laid out as decoded (channels_last).
PRESETS: dict[str, dict[str, Any]] = {
    "lerobot": {"frame_order": "shuffled", "return_uint8": False, "channels_last": False},
    "fast": {"frame_order": "forward", "return_uint8": True, "channels_last": True},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderConfig:
    """Options of :class:`ShardedLeRobotDataset` (names follow LeRobot's datasets); see its docstring."""

    delta_timestamps: Mapping[str, Sequence[float]] | None = None
    episodes: Sequence[int] | None = None  # None: every episode in the manifest (stored as a sorted tuple)
    # Episodes with a task among these exact strings, or one a predicate over the task string accepts.
    tasks: TaskSelection | None = None
    episode_filter: EpisodeFilter | None = None  # a predicate over each episode's EpisodeInfo
    # "train" | "val": an episode is in val if it is in val_episodes, or if the hash of its identity falls
    # below val_fraction (selection.py); None: no split.
    split: Split | None = None
    val_fraction: float | None = None
    val_episodes: Sequence[int] | None = None
    seed: int = 0
    shuffle: bool = True
    # 64 episodes: ~29 distinct episodes per batch of 32 on a 200-episode dataset, like map-style
    # LeRobot; memory grows with it (encoded bytes only, see README).
    episode_pool_size: int = 64
    frame_shuffle_buffer_size: int | None = None  # optional cap on the pool, in frames
    preset: Preset = "lerobot"
    # None: the preset's value. "shuffled": an episode's frames leave the pool in random order;
    # "forward": in increasing order (each frame decoded once per epoch; the pick among episodes is random).
    frame_order: FrameOrder | None = None
    return_uint8: bool | None = None  # None: the preset's value. uint8 frames, for normalisation on the GPU
    # None: the preset's value. Frames keep their (..., C, H, W) shape and values but are laid out
    # H, W, C in memory (torch's channels_last), as decoded: copying a frame is a memcpy, not a transpose.
    channels_last: bool | None = None
    # False (LeRobot's items): float64 features are returned as float32, rounded to nearest, as LeRobot's
    # torch.tensor of Python floats makes them (int8..int64 and uint8 features become int64 either way).
    # True keeps float64 features float64, exact: items then differ from LeRobot's in that dtype.
    keep_float64: bool = False
    # Depth maps (video and image) and their stats in millimetres (LeRobot's default) or metres:
    # LeRobotDataset's depth_output_unit, lerobot-train's --dataset.depth_output_unit.
    depth_output_unit: DepthUnit = "mm"
    tolerance_s: float = 1e-4  # LeRobot's default
    image_transforms: Callable[[torch.Tensor], torch.Tensor] | None = None
    rank: int | None = None  # None: torch.distributed, else RANK/WORLD_SIZE, else 0
    world_size: int | None = None
    video_decoder_cache_size: int | None = None  # None: pool size x cameras (one per episode and camera)
    video_decode_device: str = "cpu"
    # Threads decoding items ahead of the consumer (with batch_size: a batch's rows). None: up to 4 with
    # num_workers=0, 1 in a DataLoader worker. Items and order do not change (scripts/bench_read.py).
    decode_threads: int | None = None
    # Batches built by the dataset (use DataLoader(batch_size=None)): frames are decoded straight into the
    # batch tensors, one copy less than default_collate (scripts/bench_read.py).
    batch_size: int | None = None
    drop_last: bool = False  # with batch_size: drop a reader's last, smaller batch
    # Read-ahead per reader process: bytes of read-but-unclaimed episodes held, and reads in flight.
    # 64 MiB covers 20 ms of request latency at 100+ MB/s (scripts/bench_remote.py); 0 reads on demand.
    prefetch_bytes: int = 64 << 20
    prefetch_threads: int = 4
    storage_options: Mapping[str, Any] | None = field(default=None, repr=False)
    retry: storage.RetryPolicy | None = None  # None: storage.RetryPolicy()
    # "skip": a malformed episode (or a missing shard) is counted, logged once and its draws yield the
    # last good item again, so every reader keeps its item count (reader/skip.py). "raise": fail fast.
    on_error: OnError = "raise"
    # Bad episodes in a row, with no good item between, before the error is raised anyway: a few bad
    # episodes are skipped, a bucket of them (or a wrong root) is not trained on as repeats.
    max_consecutive_errors: int = 8

    def __post_init__(self) -> None:
        check_choice("preset", self.preset, Preset)
        for name, value in PRESETS[self.preset].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        check_choice("frame_order", self.frame_order, FrameOrder)
        check_choice("on_error", self.on_error, OnError)
        check_choice("depth_output_unit", self.depth_output_unit, DepthUnit)
        for name in ("episodes", "val_episodes"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(sorted(set(getattr(self, name)))))
        self._check_selection()
        object.__setattr__(self, "storage_options", dict(self.storage_options or {}))
        object.__setattr__(self, "retry", self.retry or storage.RetryPolicy())
        _at_least(1, episode_pool_size=self.episode_pool_size, prefetch_threads=self.prefetch_threads)
        _at_least(0, max_consecutive_errors=self.max_consecutive_errors)
        _at_least(0, prefetch_bytes=self.prefetch_bytes)
        _at_least(1, **{name: getattr(self, name) for name in _OPTIONAL_COUNTS})
        device = torch.device(self.video_decode_device)  # raises on a malformed device string
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"video_decode_device: got {self.video_decode_device!r}, but torch sees no CUDA device; "
                "expected 'cpu' on this machine"
            )
        if (self.rank is None) != (self.world_size is None):
            raise ValueError(
                f"rank, world_size: got {self.rank!r}, {self.world_size!r}; expected both or neither"
            )

    def _check_selection(self) -> None:
        tasks = self.tasks
        if tasks is not None and not callable(tasks):
            if isinstance(tasks, str):
                tasks = (tasks,)
            if not all(isinstance(t, str) for t in tasks):
                raise TypeError(f"tasks: got {self.tasks!r}; expected a str, a list of str or a predicate")
            object.__setattr__(self, "tasks", tuple(sorted(set(tasks))))
        if self.episode_filter is not None and not callable(self.episode_filter):
            raise TypeError(f"episode_filter: got {self.episode_filter!r}; expected a callable or None")
        given = [n for n in ("val_fraction", "val_episodes") if getattr(self, n) is not None]
        if self.split is None:
            if given:
                raise ValueError(f"{given[0]}: given without split; expected split='train' or 'val' too")
            return
        check_choice("split", self.split, Split)
        if len(given) != 1:
            raise ValueError(
                f"split={self.split!r}: got {given or 'neither val_fraction nor val_episodes'}; "
                "expected exactly one of val_fraction or val_episodes"
            )
        if self.val_fraction is not None and not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction: got {self.val_fraction!r}; expected 0 < val_fraction < 1")


_OPTIONAL_COUNTS = ("frame_shuffle_buffer_size", "batch_size", "video_decoder_cache_size", "decode_threads")


def _at_least(minimum: int, **values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < minimum:
            none = " or None" if name in _OPTIONAL_COUNTS else ""
            raise ValueError(f"{name}: got {value}; expected >= {minimum}{none}")
