"""The reader's data path, assembled in one place.

    plan_slot           which frames (a contiguous range of the epoch's) this reader streams (order.py)
    DrawSchedule        which frame of which episode comes next: pure, state = draws (schedule.py)
      or ResumedSchedule  ... or its slice of an epoch saved by other readers (elastic.py)
    EpisodeReadAhead    the episodes those draws need, read ahead along the schedule (readahead.py)
    ItemStream          the LeRobot item of each draw (windows.py, items.py), frames decoded last
      or DecodeAhead    ... built on a few threads ahead (decodeahead.py)
      or BatchStream    ... or batches of them, frames decoded straight into the batch (frames.py)
      or SkipBadEpisodes  ... items or batches, failed draws replaced (on_error="skip", skip.py)

Every stage follows one protocol (stage.py: next, state, restore, close) and takes the one before it;
no stage reaches past its neighbour. A restore skips draws in the schedule (no I/O) and builds the rest
anew.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

from torch.utils.data import get_worker_info

from .. import storage
from ..format import EpisodeEntry
from .config import ReaderConfig
from .decodeahead import DecodeAhead
from .elastic import Resume, ResumedSchedule, base_position, fallback_fill, reader_pieces
from .episodes import EpisodeSource
from .frames import DecoderCache, import_decoder_in_background
from .items import ItemSpec, build_batch, build_item
from .order import SlotPlan, WorkerInfo, episode_order, plan_slot, stream_seed
from .readahead import EpisodeDraw, EpisodeReadAhead
from .schedule import DrawSchedule
from .skip import SkipBadEpisodes, SkipPolicy
from .stage import Stage, StageState
from .telemetry import CounterBoard, Counters

logger = logging.getLogger(__name__)

# Counters reach the board every this many items (and after every batch, and at the end).
PUBLISH_EVERY_ITEMS = 16


@dataclass(frozen=True, slots=True)
class Reading:
    """What a reader needs besides its identity: where the data is and how items look."""

    url: str
    entries: list[EpisodeEntry]  # the selected episodes, in manifest order
    spec: ItemSpec
    config: ReaderConfig
    board: CounterBoard
    stored_video_keys: list[str]  # every video segment of a sample (spec.video_keys: those decoded)
    features: dict[str, Any]  # the manifest's (bounds what an episode's rows may inflate to)


def build_pipeline(
    reading: Reading,
    who: WorkerInfo,
    epoch: int,
    draws: int = 0,
    *,
    resume: Resume | None = None,
    state: StageState | None = None,
) -> ReaderStream:
    """The items (or batches) reader ``who`` yields in ``epoch``, from its ``draws``-th draw on (or from
    a saved ``state`` of its stages: :meth:`ReaderStream.state`).

    ``resume``: the rest of an epoch saved by another number of readers (elastic.py), which this reader
    takes its slice of.
    """
    config = reading.config

    def schedule_at() -> DrawSchedule | ResumedSchedule:  # pure: a fresh copy replays draws without I/O
        return reader_schedule(reading.entries, config, who, epoch, resume=resume)

    schedule = schedule_at()
    if isinstance(schedule, DrawSchedule) and schedule.plan.num_repeated:
        logger.info("%s: %s repeats %d samples so that every rank yields %d", storage.redact(reading.url),
                    who, schedule.plan.num_repeated, schedule.num_samples)  # fmt: skip
    counters = Counters()
    source = EpisodeSource(
        reading.url,
        reading.stored_video_keys,
        reading.features,
        config.storage_options,
        config.retry,
        counters,
    )
    skipping = config.on_error == "skip"
    episodes = EpisodeReadAhead(
        schedule,
        source,
        counters,
        budget_bytes=config.prefetch_bytes,
        num_threads=config.prefetch_threads,
        skip_errors=skipping,
    )
    if reading.spec.video_keys:
        import_decoder_in_background()  # overlaps the first reads
    num_cameras = max(len(reading.spec.video_keys), 1)
    decoders = DecoderCache(
        config.video_decoder_cache_size or config.episode_pool_size * num_cameras,
        config.video_decode_device,
        keep_last_window=config.frame_order == "forward",
        depth_keys=frozenset(reading.spec.depth),
    )
    threads = decode_threads(config)
    pool = None
    if config.batch_size is not None and threads > 1:  # rows of different episodes decoded in parallel
        pool = ThreadPoolExecutor(threads, "lerobot-wds-decode")
    plain = cast("Stage[EpisodeDraw]", episodes)  # without skip_errors, no FailedDraw comes
    stage: Stage[dict[str, Any]]
    if skipping:
        fill = _fill_at(schedule_at, source)
        fallback = _fallback(reading.entries, config, who, epoch, resume, source)
        stage = skip_stage(episodes, reading.spec, decoders, counters, config, pool, fill, fallback)
    elif config.batch_size is not None:
        stage = BatchStream(
            plain, reading.spec, decoders, counters, config.batch_size, config.drop_last, pool
        )
    elif threads > 1:
        stage = DecodeAhead(plain, reading.spec, decoders, counters, threads)
    else:
        stage = ItemStream(plain, reading.spec, decoders, counters)
    stage.restore(state if state is not None else {"draws": draws})
    return ReaderStream(who, epoch, stage, episodes, decoders, reading.board, pool, resume=resume)


def skip_stage(
    episodes: EpisodeReadAhead,
    spec: ItemSpec,
    decoders: DecoderCache,
    counters: Counters,
    config: ReaderConfig,
    pool: ThreadPoolExecutor | None,
    fill_at: Callable[[int], EpisodeDraw],
    fallback: Callable[[], EpisodeDraw] | None = None,
) -> SkipBadEpisodes[dict[str, Any]]:
    """``on_error="skip"``'s stage: items, or batches (reader/skip.py)."""
    policy = SkipPolicy(config.max_consecutive_errors, counters)

    def item(draw: EpisodeDraw) -> dict[str, Any]:  # item mode's values: counted
        return build_item(draw.episode, draw.frame_index, spec, decoders, counters)

    def checked(draw: EpisodeDraw) -> dict[str, Any]:  # a batch's draws built one by one: the batch counts
        return build_item(draw.episode, draw.frame_index, spec, decoders)

    def batch(draws: Sequence[EpisodeDraw]) -> dict[str, Any]:
        return batch_of(draws, spec, decoders, counters, pool)

    if config.batch_size is None:
        return SkipBadEpisodes(episodes, policy, decoders, item, fill_at, fallback=fallback)
    return SkipBadEpisodes(
        episodes, policy, decoders, checked, fill_at, fallback=fallback,
        build_batch=batch, batch_size=config.batch_size, drop_last=config.drop_last,
    )  # fmt: skip


def _fill_at(
    schedule_at: Callable[[], DrawSchedule | ResumedSchedule], source: EpisodeSource
) -> Callable[[int], EpisodeDraw]:
    """The draw at a schedule position, its episode read now (a restored skip stage's fill)."""

    def fill_at(position: int) -> EpisodeDraw:
        schedule = schedule_at()
        schedule.skip(position)
        draw = next(schedule)
        return EpisodeDraw(source.fetch(draw.entry), draw.frame_index, False, position)

    return fill_at


def _fallback(
    entries: list[EpisodeEntry],
    config: ReaderConfig,
    who: WorkerInfo,
    epoch: int,
    resume: Resume | None,
    source: EpisodeSource,
) -> Callable[[], EpisodeDraw] | None:
    """In an epoch resumed elastically, the draw this reader repeats for bad draws before its first good
    one (elastic.py, :func:`~.elastic.fallback_fill`), its episode read when asked; else None."""
    position = fallback_fill(resume, who) if resume is not None else None
    if resume is None or position is None:
        return None
    piece = base_position(resume, position)

    def fallback() -> EpisodeDraw:
        base = WorkerInfo(rank=piece.slot // resume.num_workers, world_size=resume.world_size,
                          worker=piece.slot % resume.num_workers, num_workers=resume.num_workers)  # fmt: skip
        schedule = _draw_schedule(reader_plan(entries, config, base, epoch), config, epoch, piece.slot)
        schedule.skip(piece.draw_from)
        draw = next(schedule)
        return EpisodeDraw(source.fetch(draw.entry), draw.frame_index, False, -1)  # -1: not this reader's

    return fallback


def decode_threads(config: ReaderConfig) -> int:
    """Threads that decode items (rows of a dataset-built batch): ``config.decode_threads``, else (None)
    up to 4 of the machine's cores in a process without DataLoader workers (``num_workers=0``) and 1 in
    a worker (the workers are the parallelism there). Always 1 with ``image_transforms`` (their random
    draws stay in item order) or frames decoded on a GPU."""
    if config.image_transforms is not None or config.video_decode_device != "cpu":
        return 1
    if config.decode_threads is not None:
        return config.decode_threads
    return 1 if get_worker_info() is not None else min(4, len(os.sched_getaffinity(0)))


def reader_plan(
    entries: list[EpisodeEntry],
    config: ReaderConfig,
    who: WorkerInfo,
    epoch: int,
    order: list[int] | None = None,
) -> SlotPlan:
    """The episode parts reader ``who`` streams in ``epoch`` and its number of samples (pure, no I/O)."""
    return plan_slot(entries, who, seed=config.seed, epoch=epoch, shuffle=config.shuffle, order=order)


def reader_schedule(
    entries: list[EpisodeEntry],
    config: ReaderConfig,
    who: WorkerInfo,
    epoch: int,
    *,
    resume: Resume | None = None,
) -> DrawSchedule | ResumedSchedule:
    """Reader ``who``'s draws in ``epoch`` (pure, no I/O): its plan's, or its slice of a resumed epoch's."""
    if resume is None:
        return _draw_schedule(reader_plan(entries, config, who, epoch), config, epoch, who.slot)
    order = episode_order(entries, seed=config.seed, epoch=epoch, shuffle=config.shuffle)

    def base_schedule(slot: int) -> DrawSchedule:
        base = WorkerInfo(rank=slot // resume.num_workers, world_size=resume.world_size,
                          worker=slot % resume.num_workers, num_workers=resume.num_workers)  # fmt: skip
        return _draw_schedule(reader_plan(entries, config, base, epoch, order=order), config, epoch, slot)

    pieces, num_samples = reader_pieces(resume, who)
    return ResumedSchedule(pieces, num_samples, base_schedule, failed=resume.failed)


def _draw_schedule(plan: SlotPlan, config: ReaderConfig, epoch: int, slot: int) -> DrawSchedule:
    return DrawSchedule(
        plan,
        seed=stream_seed(config.seed, epoch, slot),
        pool_size=config.episode_pool_size,
        max_pool_frames=config.frame_shuffle_buffer_size,
        shuffle=config.shuffle,
        forward=config.frame_order == "forward",
    )


class ItemStream(Iterator[dict[str, Any]]):
    """Each draw's item (frames decoded last); an episode's decoders go with its last draw."""

    def __init__(
        self, draws: Stage[EpisodeDraw], spec: ItemSpec, decoders: DecoderCache, counters: Counters
    ) -> None:
        self.draws = draws
        self.spec = spec
        self.decoders = decoders
        self.counters = counters

    def __next__(self) -> dict[str, Any]:
        draw = next(self.draws)
        item = build_item(draw.episode, draw.frame_index, self.spec, self.decoders, self.counters)
        if draw.last:
            self.decoders.release(draw.episode.entry.episode_index)
        return item

    def state(self) -> dict[str, Any]:
        return self.draws.state()  # items are built on demand: nothing ahead

    def restore(self, state: StageState) -> None:
        self.draws.restore(state)

    def close(self) -> None:
        self.draws.close()


class BatchStream(ItemStream):
    """Batches of ``batch_size`` draws, equal to ``default_collate`` of their items (a reader's last
    batch is smaller unless ``drop_last``)."""

    def __init__(
        self,
        draws: Stage[EpisodeDraw],
        spec: ItemSpec,
        decoders: DecoderCache,
        counters: Counters,
        batch_size: int,
        drop_last: bool,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        super().__init__(draws, spec, decoders, counters)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.pool = pool

    def __next__(self) -> dict[str, Any]:
        draws = list(itertools.islice(self.draws, self.batch_size))
        if not draws or (self.drop_last and len(draws) < self.batch_size):
            raise StopIteration
        batch = batch_of(draws, self.spec, self.decoders, self.counters, self.pool)
        for draw in draws:
            if draw.last:
                self.decoders.release(draw.episode.entry.episode_index)
        return batch


def batch_of(
    draws: Sequence[EpisodeDraw],
    spec: ItemSpec,
    decoders: DecoderCache,
    counters: Counters,
    pool: ThreadPoolExecutor | None,
) -> dict[str, Any]:
    """The batch of ``draws`` (:func:`~.items.build_batch`)."""
    return build_batch([(d.episode, d.frame_index) for d in draws], spec, decoders, counters, pool)


class ReaderStream(Iterator[dict[str, Any]]):
    """One reader's iteration: the last stage's output, its state and its counters."""

    def __init__(
        self,
        who: WorkerInfo,
        epoch: int,
        stage: Stage[dict[str, Any]],
        episodes: EpisodeReadAhead,
        decoders: DecoderCache,
        board: CounterBoard,
        pool: ThreadPoolExecutor | None = None,
        *,
        resume: Resume | None = None,
    ) -> None:
        self.who = who
        self.epoch = epoch
        self.resume = resume
        self.stage = stage
        self.decoders = decoders
        self.episodes = episodes  # the read-ahead stage: its schedule, its counters
        self.counters = episodes.counters
        self.board = board
        self.pool = pool  # decodes a batch's rows (owned here: both batch stages use it)
        board.publish(who.worker, self.counters)  # zeroes this reader's row
        self._published_items = 0

    def state(self) -> dict[str, Any]:
        """The stages' state as of the last value handed out: ``draws``, and ``skip_*`` when skipping."""
        return self.stage.state()

    @property
    def draws(self) -> int:
        """Draws handed out so far."""
        return int(self.stage.state()["draws"])

    @property
    def num_samples(self) -> int:
        """Draws in the whole epoch, padding included."""
        return self.episodes.schedule.num_samples

    def __next__(self) -> dict[str, Any]:
        try:
            out = next(self.stage)
        except StopIteration:
            self.close()
            raise
        if self.counters.items - self._published_items >= PUBLISH_EVERY_ITEMS:
            self.publish()
        return out

    def publish(self) -> None:
        self._published_items = self.counters.items
        self.board.publish(self.who.worker, self.counters)

    def close(self) -> None:
        """Publish the last counters and stop reading ahead (the epoch ended, or a new iteration began)."""
        self.stage.close()
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        self.publish()
