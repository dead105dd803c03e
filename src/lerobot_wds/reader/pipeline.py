"""The reader's data path, assembled in one place.

    plan_slot           which frames (a contiguous range of the epoch's) this reader streams (order.py)
    DrawSchedule        which frame of which episode comes next: pure, state = draws (schedule.py)
      or ResumedSchedule  ... or its slice of an epoch saved by other readers (elastic.py)
    EpisodeReadAhead    the episodes those draws need, read ahead along the schedule (readahead.py)
    ItemStream          the LeRobot item of each draw (windows.py, items.py), frames decoded last
      or BatchStream    ... or batches of them, frames decoded straight into the batch (frames.py)

Every stage takes the one before it; no stage reaches past its neighbour. A restore skips draws in the
schedule (no I/O) and builds the rest anew.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from torch.utils.data import get_worker_info

from ..format import EpisodeEntry
from .config import ReaderConfig
from .decodeahead import DecodeAhead
from .elastic import Resume, ResumedSchedule, reader_pieces
from .episodes import EpisodeSource
from .frames import DecoderCache, import_decoder_in_background
from .items import ItemSpec, build_batch, build_item
from .order import Partition, SlotPlan, WorkerInfo, episode_order, plan_slot, stream_seed
from .readahead import EpisodeDraw, EpisodeReadAhead
from .schedule import DrawSchedule
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


def build_pipeline(
    reading: Reading,
    who: WorkerInfo,
    epoch: int,
    draws: int = 0,
    *,
    partition: Partition = "frames",
    resume: Resume | None = None,
) -> ReaderStream:
    """The items (or batches) reader ``who`` yields in ``epoch``, from its ``draws``-th draw on.

    ``resume``: the rest of an epoch saved by another number of readers (elastic.py), which this reader
    takes its slice of; ``partition="episodes"``: the whole-episode plan of states saved before the frame
    partition.
    """
    config = reading.config
    schedule = reader_schedule(reading.entries, config, who, epoch, partition=partition, resume=resume)
    if isinstance(schedule, DrawSchedule) and schedule.plan.num_repeated:
        logger.info("%s: %s repeats %d samples so that every rank yields %d",
                    reading.url, who, schedule.plan.num_repeated, schedule.num_samples)  # fmt: skip
    schedule.skip(draws)
    counters = Counters()
    source = EpisodeSource(
        reading.url, reading.stored_video_keys, config.storage_options, config.retry, counters
    )
    episodes = EpisodeReadAhead(
        schedule, source, counters, budget_bytes=config.prefetch_bytes, num_threads=config.prefetch_threads
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
    stage: ItemStream | DecodeAhead
    threads = decode_threads(config)
    if config.batch_size is not None:
        stage = BatchStream(
            episodes, reading.spec, decoders, counters, config.batch_size, config.drop_last, threads
        )
    elif threads > 1:
        stage = DecodeAhead(episodes, reading.spec, decoders, counters, threads)
    else:
        stage = ItemStream(episodes, reading.spec, decoders, counters)
    return ReaderStream(
        who, epoch, stage, episodes, decoders, reading.board, partition=partition, resume=resume
    )


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
    partition: Partition = "frames",
    order: list[int] | None = None,
) -> SlotPlan:
    """The episode parts reader ``who`` streams in ``epoch`` and its number of samples (pure, no I/O)."""
    return plan_slot(
        entries, who, seed=config.seed, epoch=epoch, shuffle=config.shuffle, partition=partition, order=order
    )


def reader_schedule(
    entries: list[EpisodeEntry],
    config: ReaderConfig,
    who: WorkerInfo,
    epoch: int,
    *,
    partition: Partition = "frames",
    resume: Resume | None = None,
) -> DrawSchedule | ResumedSchedule:
    """Reader ``who``'s draws in ``epoch`` (pure, no I/O): its plan's, or its slice of a resumed epoch's."""
    if resume is None:
        return _draw_schedule(reader_plan(entries, config, who, epoch, partition), config, epoch, who.slot)
    order = episode_order(entries, seed=config.seed, epoch=epoch, shuffle=config.shuffle)

    def base_schedule(slot: int) -> DrawSchedule:
        base = WorkerInfo(rank=slot // resume.num_workers, world_size=resume.world_size,
                          worker=slot % resume.num_workers, num_workers=resume.num_workers)  # fmt: skip
        return _draw_schedule(reader_plan(entries, config, base, epoch, order=order), config, epoch, slot)

    pieces, num_samples = reader_pieces(resume, who)
    return ResumedSchedule(pieces, num_samples, base_schedule)


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
        self, draws: Iterator[EpisodeDraw], spec: ItemSpec, decoders: DecoderCache, counters: Counters
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

    @property
    def in_flight(self) -> int:
        """Draws taken whose items are not handed out yet: none, items are built on demand."""
        return 0

    def close(self) -> None:
        """Nothing to stop."""


class BatchStream(ItemStream):
    """Batches of ``batch_size`` draws, equal to ``default_collate`` of their items (a reader's last
    batch is smaller unless ``drop_last``)."""

    def __init__(
        self,
        draws: Iterator[EpisodeDraw],
        spec: ItemSpec,
        decoders: DecoderCache,
        counters: Counters,
        batch_size: int,
        drop_last: bool,
        threads: int = 1,
    ) -> None:
        super().__init__(draws, spec, decoders, counters)
        self.batch_size = batch_size
        self.drop_last = drop_last
        # Rows of different episodes decoded in parallel (each batch is complete before it is handed out)
        self.pool = ThreadPoolExecutor(threads, "lerobot-wds-decode") if threads > 1 else None

    def __next__(self) -> dict[str, Any]:
        draws = list(itertools.islice(self.draws, self.batch_size))
        if not draws or (self.drop_last and len(draws) < self.batch_size):
            raise StopIteration
        samples = [(d.episode, d.frame_index) for d in draws]
        batch = build_batch(samples, self.spec, self.decoders, self.counters, self.pool)
        for draw in draws:
            if draw.last:
                self.decoders.release(draw.episode.entry.episode_index)
        return batch

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


class ReaderStream(Iterator[dict[str, Any]]):
    """One reader's iteration: the last stage's output, its state (draws handed out) and its counters."""

    def __init__(
        self,
        who: WorkerInfo,
        epoch: int,
        stage: ItemStream | DecodeAhead,
        episodes: EpisodeReadAhead,
        decoders: DecoderCache,
        board: CounterBoard,
        *,
        partition: Partition = "frames",
        resume: Resume | None = None,
    ) -> None:
        self.who = who
        self.epoch = epoch
        self.partition = partition  # the plan this stream follows, for its state
        self.resume = resume
        self.stage = stage
        self.episodes = episodes
        self.decoders = decoders
        self.counters = stage.counters
        self.board = board
        board.publish(who.worker, self.counters)  # zeroes this reader's row
        self._published_items = 0

    @property
    def draws(self) -> int:
        """Draws handed out so far: the reader's state."""
        return self.episodes.draws - self.stage.in_flight

    @property
    def num_samples(self) -> int:
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
        self.publish()
        self.episodes.close()
