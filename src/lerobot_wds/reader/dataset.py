"""``ShardedLeRobotDataset``: a torch IterableDataset over lerobot-wds shards, LeRobot-exact items."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .. import format as fmt
from .. import storage
from .depth import MM_PER_METRE, DepthQuantization
from .episodes import Episode, EpisodeSource
from .frames import DecoderCache, import_decoder_in_background
from .items import ItemSpec, build_item
from .order import WorkerInfo, distributed_rank_and_world, plan_slot, stream_seed
from .pool import EpisodeShuffle, PaddedPool
from .prefetch import EpisodePrefetcher, FetchOrder
from .streams import BatchStream, SampleStream
from .windows import check_delta_timestamps, delta_indices

logger = logging.getLogger(__name__)

TIMING_FIELDS = ("fetch_s", "decode_s", "episodes", "items", "requests", "fetch_waits")
# DataLoader workers whose counters reach the training process (worker ids below this)
MAX_TIMING_SLOTS = 256


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
    # Frames keep their (..., C, H, W) shape and values but are laid out H, W, C in memory (torch's
    # channels_last), as the decoder writes them: copying a frame is then a memcpy, not a transpose.
    channels_last: bool = False
    rank: int | None = None  # None: torch.distributed, else RANK/WORLD_SIZE, else 0
    world_size: int | None = None
    video_decoder_cache_size: int | None = None  # None: pool size x cameras (one per episode and camera)
    video_decode_device: str = "cpu"
    # Batches built by the dataset (use DataLoader(batch_size=None)): frames are decoded straight into the
    # batch tensors, one copy less than default_collate (scripts/bench_read.py: variant ours_batched).
    batch_size: int | None = None
    drop_last: bool = False  # with batch_size: drop a reader's last, smaller batch
    # Read-ahead per reader process: bytes of fetched-but-unused episodes held, and reads in flight.
    # 64 MiB covers 20 ms of request latency at 100+ MB/s (scripts/bench_remote.py); 0 reads on demand.
    prefetch_bytes: int = 64 << 20
    prefetch_threads: int = 4
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
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size: got {self.batch_size}; expected >= 1 or None")
        if self.prefetch_bytes < 0 or self.prefetch_threads < 1:
            raise ValueError(
                f"prefetch_bytes, prefetch_threads: got {self.prefetch_bytes}, {self.prefetch_threads}; "
                "expected >= 0 and >= 1"
            )
        device = torch.device(self.video_decode_device)  # raises on a malformed device string
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"video_decode_device: got {self.video_decode_device!r}, but torch sees no CUDA device; "
                "expected 'cpu' on this machine"
            )
        if (self.rank is None) != (self.world_size is None):
            raise ValueError("rank and world_size: give both or neither")


@dataclass(frozen=True, slots=True)
class DatasetMeta:
    """LeRobot's metadata, as copied beside the shards, with the attributes of LeRobot's
    ``LeRobotDatasetMetadata`` that policies and their processors read (``features``, ``stats`` as
    numpy arrays, ``fps``, ``camera_keys``, ...): ``make_policy(cfg, ds_meta=dataset.meta)`` works.
    Like LeRobot's, it describes the whole source dataset, also when only some episodes are read."""

    info: dict[str, Any]
    stats: dict[str, Any]  # feature -> statistic -> np.ndarray (at least 1-d), as LeRobot loads them
    tasks: dict[int, str]  # task_index -> task

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return dict(self.info["features"])

    @property
    def robot_type(self) -> str | None:
        return self.info.get("robot_type")

    @property
    def image_keys(self) -> list[str]:
        return [key for key, feature in self.features.items() if feature["dtype"] == "image"]

    @property
    def video_keys(self) -> list[str]:
        return [key for key, feature in self.features.items() if feature["dtype"] == "video"]

    @property
    def camera_keys(self) -> list[str]:
        return [key for key, feature in self.features.items() if feature["dtype"] in ("video", "image")]

    @property
    def depth_keys(self) -> list[str]:
        """Depth-map features (``is_depth_map`` in the feature's ``info``), as LeRobot's."""
        return [key for key, feature in self.features.items() if fmt.is_depth_map(feature)]

    @property
    def names(self) -> dict[str, Any]:
        return {key: feature["names"] for key, feature in self.features.items()}

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {key: tuple(feature["shape"]) for key, feature in self.features.items()}

    @property
    def total_episodes(self) -> int:
        return int(self.info["total_episodes"])

    @property
    def total_frames(self) -> int:
        return int(self.info["total_frames"])

    @property
    def total_tasks(self) -> int:
        return int(self.info["total_tasks"])


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
    [0, 1] (``(T, C, H, W)`` for a window of several frames; uint8 with ``return_uint8=True``; laid out
    H, W, C in memory with ``channels_last=True``).

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
        channels_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        video_decoder_cache_size: int | None = None,
        video_decode_device: str = "cpu",
        batch_size: int | None = None,
        drop_last: bool = False,
        prefetch_bytes: int = 64 << 20,
        prefetch_threads: int = 4,
        storage_options: Mapping[str, Any] | None = None,
        retry: storage.RetryPolicy | None = None,
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
            channels_last=channels_last,
            rank=rank,
            world_size=world_size,
            video_decoder_cache_size=video_decoder_cache_size,
            video_decode_device=video_decode_device,
            batch_size=batch_size,
            drop_last=drop_last,
            prefetch_bytes=prefetch_bytes,
            prefetch_threads=prefetch_threads,
            storage_options=dict(storage_options or {}),
            retry=retry or storage.RetryPolicy(),
        )
        self.manifest = fmt.read_manifest(url, self.config.storage_options)
        self.meta = _read_meta(url, self.config.storage_options)
        self.entries = _select(self.manifest, self.config.episodes, url)
        if delta_timestamps is not None:
            check_delta_timestamps(delta_timestamps, self.fps, tolerance_s, self.features)
        depth_videos = [key for key in self.meta.depth_keys if key in self.meta.video_keys]
        depth_images = [key for key in self.meta.depth_keys if key in self.meta.image_keys]
        self.spec = ItemSpec(
            camera_keys=self.camera_keys,
            deltas=delta_indices(delta_timestamps or {}, self.fps),
            tasks=self.meta.tasks,
            return_uint8=return_uint8,
            channels_last=channels_last,
            image_transforms=image_transforms,
            image_keys=frozenset(self.meta.image_keys),
            depth={key: DepthQuantization.of(self.meta.features[key]) for key in depth_videos},
            depth_images={key: _to_millimetres(self.meta.features[key]) for key in depth_images},
        )
        # In shared memory: DataLoader workers (persistent ones too) hold a copy of this object made when
        # they started, and must still see set_epoch() calls made afterwards in the training process.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        # Each reader process publishes its counters in its row (worker id), so that the training process
        # sees its workers' fetch and decode times (timing_stats).
        self._timing = torch.zeros(
            (MAX_TIMING_SLOTS, len(TIMING_FIELDS)), dtype=torch.float64
        ).share_memory_()
        self._rank_and_world = distributed_rank_and_world(rank, world_size)
        self._stream: SampleStream | None = None  # the iteration under way in this process
        self._restore: dict[str, Any] | None = None  # a loaded state, applied by the next __iter__

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

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    @epoch.setter
    def epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle: the order is a pure function of (seed, epoch, rank, worker).

        Takes effect at the next ``iter(loader)``, in running DataLoader workers too
        (``persistent_workers=True``): the epoch lives in shared memory.
        """
        self.epoch = epoch

    def timing_stats(self) -> dict[str, float]:
        """Counters of the iteration under way, summed over this process's DataLoader workers (each
        publishes every 16 items, every batch and at the end), or of this process with
        ``num_workers=0``: seconds fetching (``fetch_s``, summed over read-ahead threads) and decoding,
        ``episodes`` fetched, ``items`` built, ``requests`` made, and ``fetch_waits``: episodes the pool
        had to wait for (the network was slower than decoding then; every episode without read-ahead)."""
        totals = self._timing.sum(dim=0).tolist()
        return {
            name: (value if name.endswith("_s") else int(value))
            for name, value in zip(TIMING_FIELDS, totals, strict=True)
        }

    def video_decoder_cache_stats(self) -> dict[str, int]:
        """Decoder hits, misses, evictions and open decoders of the iteration under way in this process."""
        if self._stream is None:
            return {"hits": 0, "misses": 0, "evictions": 0, "open": 0}
        return vars_of(self._stream.decoders.stats)

    # ----------------------------------------------------------------------------- iteration

    def worker_info(self) -> WorkerInfo:
        """This process's reader identity: rank and world size (read when the dataset was created, in
        the training process: DataLoader workers do not see its torch.distributed group) and worker."""
        rank, world_size = self._rank_and_world
        worker = get_worker_info()
        return WorkerInfo(
            rank=rank,
            world_size=world_size,
            worker=worker.id if worker is not None else 0,
            num_workers=worker.num_workers if worker is not None else 1,
        )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        who = self.worker_info()
        if self._stream is not None:
            self._stream.close()
        self._stream = self.stream(who, draws=self._restored_draws(who))
        if self.config.batch_size is None:
            return self._stream
        return BatchStream(self._stream, self.config.batch_size, self.config.drop_last)

    def stream(self, who: WorkerInfo, draws: int = 0) -> SampleStream:
        """The items that reader ``who`` yields this epoch, from its ``draws``-th on."""
        config = self.config
        epoch = self.epoch
        plan = plan_slot(self.entries, who, seed=config.seed, epoch=epoch, shuffle=config.shuffle)
        if plan.num_repeated:
            logger.info(
                "%s: %s repeats %d samples so that every rank yields %d",
                self.url, who, plan.num_repeated, plan.num_samples,
            )  # fmt: skip
        if self.camera_keys:
            import_decoder_in_background()  # overlaps the first fetches
        capacity = config.video_decoder_cache_size or config.episode_pool_size * max(len(self.camera_keys), 1)
        decoders = DecoderCache(
            capacity, config.video_decode_device, config.frame_order == "forward", frozenset(self.spec.depth)
        )
        source = EpisodeSource(self.url, self.camera_keys, config.storage_options, config.retry)

        def make_pool(
            fetch: Callable[[fmt.EpisodeEntry], Episode], on_evict: Callable[[int], None] | None = None
        ) -> PaddedPool:
            def shuffle(entries: list[fmt.EpisodeEntry]) -> EpisodeShuffle:
                return EpisodeShuffle(
                    entries,
                    fetch,
                    pool_size=config.episode_pool_size,
                    max_pool_frames=config.frame_shuffle_buffer_size,
                    seed=stream_seed(config.seed, epoch, who.slot),
                    shuffle=config.shuffle,
                    forward=config.frame_order == "forward",
                    on_evict=on_evict,
                )

            return PaddedPool(shuffle, plan.entries, plan.pad_entries, plan.num_samples)

        prefetcher = None
        if config.prefetch_bytes:
            prefetcher = EpisodePrefetcher(
                FetchOrder(make_pool, draws),
                source.fetch_run,
                budget_bytes=config.prefetch_bytes,
                num_threads=config.prefetch_threads,
            )
        pool = make_pool(prefetcher.fetch if prefetcher else source.fetch, decoders.release)
        pool.skip(draws)
        row = self._timing[who.worker] if who.worker < MAX_TIMING_SLOTS else None
        return SampleStream(who, epoch, pool, source, prefetcher, self.spec, decoders, row)

    def item_at(self, index: int) -> dict[str, Any]:
        """Random access to the item for LeRobot's global ``index`` (for checks; fetches its episode)."""
        for entry in self.entries:
            if entry.dataset_from_index <= index < entry.dataset_from_index + entry.num_frames:
                source = EpisodeSource(self.url, self.camera_keys, self.config.storage_options)
                capacity = max(len(self.camera_keys), 1)
                depth_keys = frozenset(self.spec.depth)
                decoders = DecoderCache(capacity, self.config.video_decode_device, depth_keys=depth_keys)
                return build_item(source.fetch(entry), index - entry.dataset_from_index, self.spec, decoders)
        raise IndexError(f"{self.url}: index {index} is in none of the {self.num_episodes} selected episodes")

    # -------------------------------------------------------------------------------- resume

    def state_dict(self) -> dict[str, Any]:
        """Where this reader is in its epoch: small JSON-able data (no bytes, no frames).

        Called by torchdata's ``StatefulDataLoader`` (in each worker with ``num_workers > 0``).
        """
        stream = self._stream
        who = stream.who if stream is not None else self.worker_info()
        return {
            "format_version": fmt.FORMAT_VERSION,
            "fingerprint": self.fingerprint(),
            "epoch": stream.epoch if stream is not None else self.epoch,
            "draws": stream.pool.draws if stream is not None else 0,
            **asdict(who),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume where :meth:`state_dict` was taken: the next items are those that would have come next.

        Refuses a state from another dataset or other order options, and a different number of ranks
        or workers (an elastic restore is not re-planned: it could not keep every frame exactly once).
        """
        if state.get("format_version") != fmt.FORMAT_VERSION:
            raise ValueError(
                f"{self.url}: reader state has format_version {state.get('format_version')!r}; "
                f"expected {fmt.FORMAT_VERSION}"
            )
        if state.get("fingerprint") != self.fingerprint():
            raise ValueError(
                f"{self.url}: reader state was saved for another dataset or other order options "
                "(seed, shuffle, episodes, pool size, frame buffer, frame order); got fingerprint "
                f"{state.get('fingerprint')!r}, expected {self.fingerprint()!r}"
            )
        self.epoch = int(state["epoch"])
        self._restore = dict(state)

    def fingerprint(self) -> str:
        """A hash of the dataset's identity and of every option that changes the order of items."""
        config = self.config
        identity = {
            "source": [self.manifest.source.location, self.manifest.source.revision],
            "shards": [s.sha256 for s in self.manifest.shards],
            "episodes": [e.episode_index for e in self.entries],
            "order": [
                config.seed,
                config.shuffle,
                config.episode_pool_size,
                config.frame_shuffle_buffer_size,
                config.frame_order,
            ],
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def _restored_draws(self, who: WorkerInfo) -> int:
        """Draws to skip: those of a loaded state for this epoch and reader, else 0."""
        state, self._restore = self._restore, None
        if state is None or int(state["epoch"]) != self.epoch:
            return 0
        saved = WorkerInfo(**{k: int(state[k]) for k in ("rank", "world_size", "worker", "num_workers")})
        if saved != who:
            raise ValueError(
                f"{self.url}: reader state was saved by {saved}; this reader is {who}; restoring with "
                "another number of ranks or workers is not supported (it could not keep every frame once)"
            )
        return int(state["draws"])


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
    """LeRobot's meta files beside the shards, read in one concurrent batch (stats.json is optional)."""
    info_url, stats_url, tasks_url = (storage.join(url, name) for name in fmt.META_FILES)
    blobs = storage.read_many([info_url, stats_url, tasks_url], storage_options)
    for required in (info_url, tasks_url):
        if blobs[required] is None:
            raise FileNotFoundError(f"{required}: missing; expected LeRobot's meta files beside the shards")
    info = json.loads(blobs[info_url] or b"")
    stats = _stats_as_arrays(json.loads(blobs[stats_url] or b"{}"))
    _depth_stats_in_millimetres(stats, info["features"])
    table = pq.read_table(io.BytesIO(blobs[tasks_url] or b""))
    return DatasetMeta(info=info, stats=stats, tasks=fmt.task_strings(table, tasks_url))


def _stats_as_arrays(stats: Any) -> Any:
    """stats.json's lists as numpy arrays of at least one dimension, as LeRobot's ``load_stats``."""
    if isinstance(stats, dict):
        return {key: _stats_as_arrays(value) for key, value in stats.items()}
    return np.atleast_1d(np.asarray(stats))


def _to_millimetres(feature: Mapping[str, Any]) -> float:
    """The factor from a depth map's recorded unit to millimetres (LeRobot's ``depth_unit``; none: as is)."""
    return MM_PER_METRE if (feature.get("info") or {}).get("depth_unit") == "m" else 1.0


def _depth_stats_in_millimetres(stats: dict[str, Any], features: Mapping[str, Any]) -> None:
    """Depth frames are returned in millimetres; stats recorded in metres are scaled to match, in place
    (LeRobot's ``rescale_depth_stats("mm")``: every statistic but ``count``)."""
    for key, feature in features.items():
        if fmt.is_depth_map(feature) and _to_millimetres(feature) != 1.0 and key in stats:
            stats[key] = {
                stat: value if stat == "count" else value * MM_PER_METRE for stat, value in stats[key].items()
            }
