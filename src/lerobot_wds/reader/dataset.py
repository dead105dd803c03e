"""``ShardedLeRobotDataset``: a torch IterableDataset over lerobot-wds shards, LeRobot-exact items."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .. import format as fmt
from .. import storage
from ..meta import read_meta
from ..orphans import exit_with_parent
from .config import DepthUnit, FrameOrder, OnError, Preset, ReaderConfig
from .elastic import Resume
from .episodes import EpisodeSource
from .frames import DecoderCache
from .items import build_item, item_spec
from .order import PARTITION, WorkerInfo, check_partition, distributed_rank_and_world
from .pipeline import ReaderStream, Reading, build_pipeline, reader_plan
from .resumable import Resumable
from .selection import EpisodeFilter, Split, TaskSelection, select_episodes
from .telemetry import CounterBoard, Counters
from .windows import check_delta_timestamps


class ShardedLeRobotDataset(Resumable, IterableDataset[dict[str, Any]]):
    """Streams a converted LeRobot v3 dataset; each item equals ``LeRobotDataset[index]`` for its frame.

    Each epoch's frames are split across ranks and DataLoader workers in equal contiguous ranges of the
    shuffled episodes; episodes are held whole and encoded in a pool of ``episode_pool_size``, drawn from
    frame by frame, and only the frames of each window are decoded, as the item leaves the pool.

    Args:
        url: a converted dataset: local path or fsspec URL (``s3://…``, ``hf://…``).
        delta_timestamps: ``{key: [seconds, ...]}`` windows, as in LeRobot; offsets are multiples of
            ``1/fps``; windows clamp at episode edges and ``{key}_is_pad`` marks the clamped entries.
        episodes: episode indices to stream (default: all). The selection options below narrow them
            further; the chosen episodes are ``entries`` and enter ``fingerprint()``.
        tasks: keep episodes with a task among these exact task strings (one ``str`` or several), or
            with a task for which this predicate ``(task: str) -> bool`` is true.
        episode_filter: keep episodes for which this predicate over their manifest metadata
            (:class:`~lerobot_wds.EpisodeInfo`: ``episode_index``, ``num_frames``,
            ``tasks``, ``task_indices``, ``dataset_from_index``) is true. Predicates run once, here;
            any callable works (lambdas too: DataLoader workers receive the selected episodes).
        split: ``"train"`` or ``"val"``, with ``val_fraction`` (an episode is in val when a fixed
            hash of the dataset's name and its ``episode_index`` falls below it: stable across runs,
            machines and releases) or ``val_episodes`` (an explicit list; train is the rest).
        preset: ``"lerobot"`` (LeRobot's items) or ``"fast"`` (each frame decoded once per epoch, uint8,
            channels_last: several times faster; see README). Options given explicitly win.
        **see** :class:`ReaderConfig` for the other options.

    Items: every feature of the dataset (scalars as 0-d tensors) in LeRobot's dtypes (float features
    float32, integer features int64, bool, strings as str; ``keep_float64=True`` keeps float64;
    depth maps float32 in ``depth_output_unit``, millimetres by default, as LeRobot),
    ``index``, ``episode_index``, ``frame_index``, ``timestamp``, ``task_index``, ``task`` (str);
    cameras float32 ``(C, H, W)`` in [0, 1] (``(T, C, H, W)`` for a window of several frames; uint8 with
    ``return_uint8=True``; laid out H, W, C in memory with ``channels_last=True``).

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
        tasks: TaskSelection | None = None,
        episode_filter: EpisodeFilter | None = None,
        split: Split | None = None,
        val_fraction: float | None = None,
        val_episodes: Sequence[int] | None = None,
        seed: int = 0,
        shuffle: bool = True,
        episode_pool_size: int = 64,
        frame_shuffle_buffer_size: int | None = None,
        preset: Preset = "lerobot",
        frame_order: FrameOrder | None = None,
        return_uint8: bool | None = None,
        channels_last: bool | None = None,
        keep_float64: bool = False,
        depth_output_unit: DepthUnit = "mm",
        tolerance_s: float = 1e-4,
        image_transforms: Callable[[torch.Tensor], torch.Tensor] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        video_decoder_cache_size: int | None = None,
        video_decode_device: str = "cpu",
        decode_threads: int | None = None,
        batch_size: int | None = None,
        drop_last: bool = False,
        prefetch_bytes: int = 64 << 20,
        prefetch_threads: int = 4,
        storage_options: Mapping[str, Any] | None = None,
        retry: storage.RetryPolicy | None = None,
        on_error: OnError = "raise",
        max_consecutive_errors: int = 8,
    ) -> None:
        super().__init__()
        # Every keyword is a ReaderConfig field of the same name and default (tests/reader/test_config.py).
        arguments = locals()
        options = {f.name: arguments[f.name] for f in fields(ReaderConfig)}
        self.url = url
        self.shown_url = storage.redact(url)  # in messages: without a URL's password or query
        self.config = config = ReaderConfig(**options)
        self.manifest = fmt.read_manifest(url, config.storage_options, retry=config.retry)
        self.meta = read_meta(
            url, config.storage_options, retry=config.retry, depth_output_unit=config.depth_output_unit
        )
        self.entries = select_episodes(
            self.manifest, self.meta.tasks, url, episodes=config.episodes, tasks=config.tasks,
            episode_filter=config.episode_filter, split=config.split, val_fraction=config.val_fraction,
            val_episodes=config.val_episodes,
        )  # fmt: skip
        if delta_timestamps is not None:
            check_delta_timestamps(delta_timestamps, self.fps, tolerance_s, self.features)
        self.spec = item_spec(self.meta, self.video_keys, self.fps, config)
        self._share_epoch()
        self._board = CounterBoard()  # each reader process's counters, summed by timing_stats()
        self._rank_and_world = distributed_rank_and_world(rank, world_size)
        self._stream: ReaderStream | None = None  # the iteration under way in this process
        self._num_frames: int | None = None
        self._where = self.shown_url
        self._what_changed = (
            "another dataset or other order options (seed, shuffle, episodes, pool size, frame buffer, "
            "frame order)"
        )

    @property
    def fps(self) -> int:
        return self.manifest.fps

    @property
    def features(self) -> dict[str, Any]:
        return self.manifest.features

    @property
    def camera_keys(self) -> list[str]:
        """Video and image features, as LeRobot's ``camera_keys``."""
        return self.meta.camera_keys

    @property
    def video_keys(self) -> list[str]:
        """Features stored as video: one mp4 segment per episode in the shards."""
        return self.manifest.camera_keys

    @property
    def num_episodes(self) -> int:
        return len(self.entries)

    @property
    def num_frames(self) -> int:
        if self._num_frames is None:  # once: state_dict() reads it after every batch (130,000 episodes)
            self._num_frames = sum(e.num_frames for e in self.entries)
        return self._num_frames

    def __getstate__(self) -> dict[str, Any]:
        """What DataLoader workers receive (pickled under ``spawn``): the selection predicates are left
        out of ``config`` (as None), since the selection they made is already in ``entries``; so lambdas
        and local functions work as ``tasks``/``episode_filter`` whatever the start method."""
        state = dict(self.__dict__)
        config = self.config
        if callable(config.tasks) or config.episode_filter is not None:
            tasks = None if callable(config.tasks) else config.tasks
            state["config"] = replace(config, tasks=tasks, episode_filter=None)
        return state

    def timing_stats(self) -> dict[str, float]:
        """Counters of the iteration under way, summed over this process's DataLoader workers (or of this
        process at ``num_workers=0``): ``fetch_s``, ``decode_s``, ``episodes`` fetched, ``items`` built,
        ``requests`` made, ``fetch_waits`` (episodes waited for; all of them without read-ahead)."""
        return self._board.totals()

    def reset_timing_stats(self, who: WorkerInfo) -> None:
        """Zero the counters of reader ``who`` (as a new iteration does)."""
        self._board.publish(who.worker, Counters())

    def video_decoder_cache_stats(self) -> dict[str, int]:
        """Decoder hits, misses, evictions and open decoders of the iteration under way in this process."""
        stats = self._stream.decoders.stats if self._stream is not None else None
        return {name: getattr(stats, name, 0) for name in ("hits", "misses", "evictions", "open")}

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
        exit_with_parent()  # in a DataLoader worker: exit when the training process is gone
        who = self.worker_info()
        if self._stream is not None:
            self._stream.close()
        stages, resume = self._restored_position(who)
        self._stream = self._open_stream(who, resume=resume, state=stages)
        return self._stream

    def _open_stream(
        self,
        who: WorkerInfo,
        draws: int = 0,
        epoch: int | None = None,
        skip_videos: Collection[str] = (),
        *,
        resume: Resume | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> ReaderStream:
        """The items (or batches) that reader ``who`` yields in ``epoch`` (default: the current one), from
        its ``draws``-th draw on, without the video features in ``skip_videos`` (read, not decoded).
        A mixture streams each source through this, with an epoch per lap. ``resume``/``state``:
        a restored state's plan and stages (see :func:`~.pipeline.build_pipeline`)."""
        spec = self.spec
        if skip_videos:
            spec = replace(spec, video_keys=[key for key in spec.video_keys if key not in skip_videos])
        reading = Reading(
            self.url, self.entries, spec, self.config, self._board, self.video_keys, self.features
        )
        epoch = self.epoch if epoch is None else epoch
        return build_pipeline(reading, who, epoch, draws, resume=resume, state=state)

    def stream(
        self,
        who: WorkerInfo,
        draws: int = 0,
        epoch: int | None = None,
        skip_videos: Collection[str] = (),
    ) -> ReaderStream:
        """Deprecated: internal (a mixture's and ``lerobot_train``'s way in); iterate the dataset instead,
        or build a :class:`~lerobot_wds.MixedDataset`."""
        warnings.warn(
            "ShardedLeRobotDataset.stream() is internal and will be removed; iterate the dataset (with "
            "set_epoch/load_state_dict for the epoch and position) or use MixedDataset",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._open_stream(who, draws, epoch, skip_videos)

    def samples_per_reader(self, who: WorkerInfo, epoch: int | None = None) -> int:
        """How many items (draws) :meth:`stream` yields for reader ``who`` in ``epoch`` (pure, no I/O); the
        same for worker ``w`` of every rank (the DDP padding)."""
        return reader_plan(self.entries, self.config, who, self.epoch if epoch is None else epoch).num_samples

    def item_at(self, index: int) -> dict[str, Any]:
        """Random access to the item for LeRobot's global ``index`` (for checks; fetches its episode)."""
        for entry in self.entries:
            if entry.dataset_from_index <= index < entry.dataset_from_index + entry.num_frames:
                source = EpisodeSource(self.url, self.video_keys, self.features, self.config.storage_options)
                decoders = DecoderCache(
                    max(len(self.video_keys), 1), self.config.video_decode_device,
                    depth_keys=frozenset(self.spec.depth),
                )  # fmt: skip
                return build_item(source.fetch(entry), index - entry.dataset_from_index, self.spec, decoders)
        raise IndexError(
            f"{self.shown_url}: index {index} is in none of the {self.num_episodes} selected episodes"
        )

    def state_dict(self) -> dict[str, Any]:
        """Where this reader is in its epoch: small JSON-able data (no bytes, no frames).

        Called by torchdata's ``StatefulDataLoader`` (in each worker with ``num_workers > 0``). The plan it
        refers to: ``partition`` and ``num_frames``, and in an epoch resumed elastically ``resumed``, the
        positions that epoch was resumed with (one interval per reader saved, at most).
        """
        stream = self._stream
        stages = stream.state() if stream is not None else {"draws": 0}
        state = {
            **self._envelope(
                stream.epoch if stream is not None else self.epoch,
                stream.who if stream is not None else self.worker_info(),
            ),
            "draws": stages["draws"],
            "partition": PARTITION,
            "num_frames": self.num_frames,
            **{key: value for key, value in stages.items() if key.startswith("skip_")},
        }
        if stream is not None and stream.resume is not None:
            state["resumed"] = stream.resume.to_json()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume where :meth:`state_dict` was taken: the next items are those that would have come next.

        Also loads :func:`~lerobot_wds.reader.elastic_state` of a run with another number of ranks or
        workers: this reader then yields its equal share of the frames that run had not handed out.
        Refuses a state from another dataset or other order options, and a reader state of another number
        of ranks or workers (the next ``iter``: combine the run's states with ``elastic_state`` instead).
        """
        super().load_state_dict(state)

    def _identity(self) -> dict[str, Any]:
        config = self.config
        identity = {
            "source": [self.manifest.source.location, self.manifest.source.revision],
            "shards": [s.sha256 for s in self.manifest.shards],
            "episodes": [e.episode_index for e in self.entries],
            "order": [config.seed, config.shuffle, config.episode_pool_size,
                      config.frame_shuffle_buffer_size, config.frame_order],
        }  # fmt: skip
        return identity

    def _restored_position(self, who: WorkerInfo) -> tuple[dict[str, Any], Resume | None]:
        """Where this reader starts: its stages' state (the draws to skip, ...) and, in an epoch resumed
        elastically, the resumed plan they count in (else ``None``: this reader's own plan)."""
        state = self._take_restore()
        if state is None:
            return {"draws": 0}, None
        if "elastic" in state:  # elastic_state(): this reader's slice of what the saved run left
            return {"draws": 0}, Resume.from_json(state["elastic"])
        self._check_saved_by(
            state, who, "to resume with another number of ranks or workers, load "
            "lerobot_wds.reader.elastic_state(<the run's saved states>) into the dataset (see README, "
            "'Elastic resume')",
        )  # fmt: skip
        check_partition(state, where=f"{self.shown_url}: ")
        resume = Resume.from_json(state["resumed"]) if "resumed" in state else None
        stages = {key: value for key, value in state.items() if key.startswith("skip_")}
        return {"draws": int(state["draws"]), **stages}, resume
