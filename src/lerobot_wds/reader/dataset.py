"""``ShardedLeRobotDataset``: a torch IterableDataset over lerobot-wds shards, LeRobot-exact items."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .. import format as fmt
from .. import storage
from .episodes import Episode, EpisodeSource
from .frames import DecoderCache
from .items import ItemSpec, TimingStats, build_item
from .order import WorkerInfo, assigned_episodes, distributed_rank_and_world, stream_seed
from .pool import EpisodeShuffle
from .windows import check_delta_timestamps, delta_indices

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderConfig:
    """Options of :class:`ShardedLeRobotDataset` (names follow LeRobot's streaming dataset)."""

    delta_timestamps: Mapping[str, Sequence[float]] | None = None
    episodes: tuple[int, ...] | None = None  # None: every episode in the manifest
    seed: int = 0
    shuffle: bool = True
    # 64 episodes: ~29 distinct episodes per batch of 32 on a 200-episode dataset, like map-style
    # LeRobot; memory grows with it (encoded bytes only, see README).
    episode_pool_size: int = 64
    frame_shuffle_buffer_size: int | None = None  # optional cap on the pool, in frames
    # "shuffled": an episode's frames leave the pool in random order; "forward": in increasing order
    # (each frame decoded once per epoch, several times faster; the pick among episodes stays random).
    frame_order: str = "shuffled"
    tolerance_s: float = 1e-4  # LeRobot's default
    image_transforms: Callable[[torch.Tensor], torch.Tensor] | None = None
    return_uint8: bool = False  # uint8 frames, for normalisation on the GPU
    rank: int | None = None  # None: torch.distributed, else RANK/WORLD_SIZE, else 0
    world_size: int | None = None
    video_decoder_cache_size: int | None = None  # None: pool size x cameras (one per episode and camera)
    video_decode_device: str = "cpu"
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    retry: storage.RetryPolicy = field(default_factory=storage.RetryPolicy)

    def __post_init__(self) -> None:
        if self.episode_pool_size < 1:
            raise ValueError(f"episode_pool_size: got {self.episode_pool_size}; expected >= 1")
        if self.frame_shuffle_buffer_size is not None and self.frame_shuffle_buffer_size < 1:
            raise ValueError(
                f"frame_shuffle_buffer_size: got {self.frame_shuffle_buffer_size}; expected >= 1"
            )
        if self.frame_order not in ("shuffled", "forward"):
            raise ValueError(f"frame_order: got {self.frame_order!r}; expected 'shuffled' or 'forward'")
        if self.video_decoder_cache_size is not None and self.video_decoder_cache_size < 1:
            raise ValueError(f"video_decoder_cache_size: got {self.video_decoder_cache_size}; expected >= 1")
        if (self.rank is None) != (self.world_size is None):
            raise ValueError("rank and world_size: give both or neither")


@dataclass(frozen=True, slots=True)
class DatasetMeta:
    """LeRobot's metadata, as copied beside the shards."""

    info: dict[str, Any]
    stats: dict[str, Any]
    tasks: dict[int, str]  # task_index -> task


class ShardedLeRobotDataset(IterableDataset[dict[str, Any]]):
    """Streams a converted LeRobot v3 dataset; each item equals ``LeRobotDataset[index]`` for its frame.

    Episodes are split across ranks and DataLoader workers (balanced by frames), held whole and
    encoded in a pool of ``episode_pool_size``, drawn from frame by frame, and only the frames of
    each window are decoded, as the item leaves the pool.

    Args:
        url: a converted dataset: local path or fsspec URL (``s3://…``, ``hf://…``).
        delta_timestamps: ``{key: [seconds, ...]}`` windows, as in LeRobot; offsets are multiples of
            ``1/fps``; windows clamp at episode edges and ``{key}_is_pad`` marks the clamped entries.
        **see** :class:`ReaderConfig` for the other options.

    Items: every feature of the dataset (scalars as 0-d tensors), ``index``, ``episode_index``,
    ``frame_index``, ``timestamp``, ``task_index``, ``task`` (str); cameras float32 ``(C, H, W)`` in
    [0, 1] (``(T, C, H, W)`` for a window of several frames; uint8 with ``return_uint8=True``).

    Example:
        >>> from torch.utils.data import DataLoader
        >>> dataset = ShardedLeRobotDataset("out/demo/tiny", delta_timestamps={"action": [0, 1 / 30]})
        >>> batch = next(iter(DataLoader(dataset, batch_size=8, num_workers=2)))
        >>> batch["action"].shape
        torch.Size([8, 2, 6])
    """

    def __init__(
        self,
        url: str,
        *,
        delta_timestamps: Mapping[str, Sequence[float]] | None = None,
        episodes: Sequence[int] | None = None,
        seed: int = 0,
        shuffle: bool = True,
        episode_pool_size: int = 64,
        frame_shuffle_buffer_size: int | None = None,
        frame_order: str = "shuffled",
        tolerance_s: float = 1e-4,
        image_transforms: Callable[[torch.Tensor], torch.Tensor] | None = None,
        return_uint8: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        video_decoder_cache_size: int | None = None,
        video_decode_device: str = "cpu",
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.url = url
        self.config = ReaderConfig(
            delta_timestamps=delta_timestamps,
            episodes=tuple(episodes) if episodes is not None else None,
            seed=seed,
            shuffle=shuffle,
            episode_pool_size=episode_pool_size,
            frame_shuffle_buffer_size=frame_shuffle_buffer_size,
            frame_order=frame_order,
            tolerance_s=tolerance_s,
            image_transforms=image_transforms,
            return_uint8=return_uint8,
            rank=rank,
            world_size=world_size,
            video_decoder_cache_size=video_decoder_cache_size,
            video_decode_device=video_decode_device,
            storage_options=dict(storage_options or {}),
        )
        self.manifest = fmt.read_manifest(url, self.config.storage_options)
        self.meta = _read_meta(url, self.config.storage_options)
        self.entries = _select(self.manifest, self.config.episodes, url)
        if delta_timestamps is not None:
            check_delta_timestamps(delta_timestamps, self.fps, tolerance_s, self.features)
        self.spec = ItemSpec(
            camera_keys=self.camera_keys,
            deltas=delta_indices(delta_timestamps or {}, self.fps),
            tasks=self.meta.tasks,
            return_uint8=return_uint8,
            image_transforms=image_transforms,
        )
        self.epoch = 0
        self._timing = TimingStats()
        self._decoders: DecoderCache | None = None

    # ---------------------------------------------------------------------------- properties

    @property
    def fps(self) -> int:
        return self.manifest.fps

    @property
    def features(self) -> dict[str, Any]:
        return self.manifest.features

    @property
    def camera_keys(self) -> list[str]:
        return self.manifest.camera_keys

    @property
    def num_episodes(self) -> int:
        return len(self.entries)

    @property
    def num_frames(self) -> int:
        return sum(e.num_frames for e in self.entries)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle: the order is a pure function of (seed, epoch, rank, worker)."""
        self.epoch = epoch

    def timing_stats(self) -> TimingStats:
        """Fetch and decode seconds of this process's iterations (each DataLoader worker has its own)."""
        return self._timing

    def video_decoder_cache_stats(self) -> dict[str, int]:
        stats = self._decoders.stats if self._decoders is not None else None
        return {"hits": 0, "misses": 0, "evictions": 0, "open": 0} if stats is None else vars_of(stats)

    # ----------------------------------------------------------------------------- iteration

    def worker_info(self) -> WorkerInfo:
        rank, world_size = distributed_rank_and_world(self.config.rank, self.config.world_size)
        worker = get_worker_info()
        return WorkerInfo(
            rank=rank,
            world_size=world_size,
            worker=worker.id if worker is not None else 0,
            num_workers=worker.num_workers if worker is not None else 1,
        )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.stream(self.worker_info())

    def stream(self, who: WorkerInfo) -> SampleStream:
        """The items that reader ``who`` yields this epoch."""
        config = self.config
        entries = assigned_episodes(
            self.entries, who, seed=config.seed, epoch=self.epoch, shuffle=config.shuffle
        )
        capacity = config.video_decoder_cache_size or config.episode_pool_size * max(len(self.camera_keys), 1)
        self._decoders = DecoderCache(capacity, config.video_decode_device)
        source = EpisodeSource(self.url, entries, self.camera_keys, config.storage_options, config.retry)
        pool = EpisodeShuffle(
            _TimedSource(source, self._timing),
            pool_size=config.episode_pool_size,
            max_pool_frames=config.frame_shuffle_buffer_size,
            seed=stream_seed(config.seed, self.epoch, who.slot),
            shuffle=config.shuffle,
            forward=config.frame_order == "forward",
            on_evict=self._decoders.release,
        )
        return SampleStream(pool, self.spec, self._decoders, self._timing)

    def item_at(self, index: int) -> dict[str, Any]:
        """Random access to the item for LeRobot's global ``index`` (for checks; fetches its episode)."""
        for entry in self.entries:
            if entry.dataset_from_index <= index < entry.dataset_from_index + entry.num_frames:
                source = EpisodeSource(self.url, [entry], self.camera_keys, self.config.storage_options)
                episode = source.fetch(entry)
                decoders = DecoderCache(max(len(self.camera_keys), 1), self.config.video_decode_device)
                return build_item(episode, index - entry.dataset_from_index, self.spec, decoders)
        raise IndexError(f"{self.url}: index {index} is in none of the {self.num_episodes} selected episodes")


class SampleStream(Iterator[dict[str, Any]]):
    """Draws from the pool, then builds (and decodes) the item: decode is stateless and last."""

    def __init__(
        self, pool: EpisodeShuffle, spec: ItemSpec, decoders: DecoderCache, timing: TimingStats
    ) -> None:
        self.pool = pool
        self.spec = spec
        self.decoders = decoders
        self.timing = timing

    def __next__(self) -> dict[str, Any]:
        draw = next(self.pool)
        return build_item(draw.episode, draw.frame_index, self.spec, self.decoders, self.timing)


class _TimedSource(Iterator[Episode]):
    """Counts the seconds spent fetching episodes."""

    def __init__(self, source: EpisodeSource, timing: TimingStats) -> None:
        self.source = source
        self.timing = timing

    def __next__(self) -> Episode:
        started = time.perf_counter()
        episode = next(self.source)
        self.timing.fetch_s += time.perf_counter() - started
        self.timing.episodes += 1
        return episode


def vars_of(stats: Any) -> dict[str, int]:
    return {name: getattr(stats, name) for name in stats.__slots__}


def _select(manifest: fmt.Manifest, episodes: tuple[int, ...] | None, url: str) -> list[fmt.EpisodeEntry]:
    if episodes is None:
        return list(manifest.episodes)
    by_index = {e.episode_index: e for e in manifest.episodes}
    missing = sorted(set(episodes) - set(by_index))
    if missing:
        raise ValueError(f"{url}: episodes {missing[:10]} are not in the manifest; it has {len(by_index)}")
    return [by_index[i] for i in sorted(set(episodes))]


def _read_meta(url: str, storage_options: Mapping[str, Any]) -> DatasetMeta:
    info = json.loads(storage.read_bytes(storage.join(url, "meta/info.json"), storage_options))
    stats_url = storage.join(url, "meta/stats.json")
    stats = (
        json.loads(storage.read_bytes(stats_url, storage_options))
        if storage.exists(stats_url, storage_options)
        else {}
    )
    tasks_url = storage.join(url, "meta/tasks.parquet")
    table = pq.read_table(io.BytesIO(storage.read_bytes(tasks_url, storage_options)))
    return DatasetMeta(info=info, stats=stats, tasks=fmt.task_strings(table, tasks_url))
