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

from ..format import EpisodeEntry, ShardFormatError
from .config import ReaderConfig
from .decodeahead import DecodeAhead
from .elastic import Resume, ResumedSchedule, reader_pieces
from .episodes import Episode, EpisodeSource
from .frames import DecoderCache, import_decoder_in_background
from .items import ItemSpec, build_batch, build_item
from .order import Partition, SlotPlan, WorkerInfo, episode_order, plan_slot, stream_seed
from .readahead import EpisodeDraw, EpisodeReadAhead
from .schedule import DrawSchedule
from .skip import SKIPPABLE, SkippedDraw, SkipPolicy
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
    skip = SkipPolicy(config.max_consecutive_errors, counters) if skipping else None
    stage: ItemStream | DecodeAhead
    threads = decode_threads(config)
    if config.batch_size is not None:
        stage = BatchStream(
            episodes, reading.spec, decoders, counters, config.batch_size, config.drop_last, skip, threads
        )
    elif threads > 1 and skip is None:  # a skipped draw repeats the last good item: one item at a time
        stage = DecodeAhead(episodes, reading.spec, decoders, counters, threads)
    else:
        stage = ItemStream(episodes, reading.spec, decoders, counters, skip)
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
    """Each draw's item (frames decoded last); an episode's decoders go with its last draw.

    With a :class:`SkipPolicy` (``on_error="skip"``), a draw whose episode failed (to read, or here to
    build) yields the last good item again, or the next good one when none came yet (reader/skip.py)."""

    def __init__(
        self,
        draws: Iterator[EpisodeDraw],
        spec: ItemSpec,
        decoders: DecoderCache,
        counters: Counters,
        skip: SkipPolicy | None = None,
    ) -> None:
        self.draws = draws
        self.spec = spec
        self.decoders = decoders
        self.counters = counters
        self.skip = skip
        self._failed: dict[int, Exception] = {}  # episodes that failed here, until their last draw
        self._last_good: dict[str, Any] | None = None
        self._owed = 0  # failed draws before any good item: paid by repeating the first good one

    def __next__(self) -> dict[str, Any]:
        if self.skip is None:
            draw = next(self.draws)
            item = build_item(draw.episode, draw.frame_index, self.spec, self.decoders, self.counters)
            if draw.last:
                self.decoders.release(draw.episode.entry.episode_index)
            return item
        if self._owed and self._last_good is not None:
            self._owed -= 1
            return dict(self._last_good)
        while True:
            try:
                built = self._item_or_none(self.skip)
            except StopIteration:
                if self._owed:
                    raise ShardFormatError(
                        f"on_error='skip': {self._owed} draws failed and no episode of this reader gave an "
                        "item to repeat in their place"
                    ) from None
                raise
            if built is not None:
                self.skip.succeeded()
                self._last_good = built
                return built
            if self._last_good is not None:
                return dict(self._last_good)
            self._owed += 1

    def _item_or_none(self, skip: SkipPolicy) -> dict[str, Any] | None:
        """The next draw's item; None if its episode failed (counted, logged, limited by ``skip``)."""
        try:
            draw = next(self.draws)
        except SkippedDraw as skipped:
            skip.failed(skipped.error, skipped.episode_index, skipped.first)
            return None
        episode_index = draw.episode.entry.episode_index
        item: dict[str, Any] | None = None
        if episode_index in self._failed:
            skip.failed(self._failed[episode_index], episode_index, first=False)
        else:
            try:
                item = build_item(draw.episode, draw.frame_index, self.spec, self.decoders, self.counters)
            except SKIPPABLE as exc:
                self._failed[episode_index] = exc
                self.decoders.release(episode_index)
                skip.failed(exc, episode_index, first=True)
        if draw.last:
            self.decoders.release(episode_index)
            self._failed.pop(episode_index, None)
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
        skip: SkipPolicy | None = None,
        threads: int = 1,
    ) -> None:
        super().__init__(draws, spec, decoders, counters, skip)
        self.batch_size = batch_size
        self.drop_last = drop_last
        # Rows of different episodes decoded in parallel (each batch is complete before it is handed out)
        self.pool = ThreadPoolExecutor(threads, "lerobot-wds-decode") if threads > 1 else None

        self._fill: tuple[Episode, int] | None = None  # on_error="skip": the last good sample
        self._owed_batches: list[int] = []  # sizes of batches that had no good sample to repeat yet

    def __next__(self) -> dict[str, Any]:
        if self.skip is not None:
            return self._next_skipping(self.skip)
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

    def _next_skipping(self, skip: SkipPolicy) -> dict[str, Any]:
        """A batch whose failed samples repeat the batch's last good sample (or an earlier batch's).
        Failures are found when fetching and when opening each episode's decoders; a frame that fails to
        decode after its segment opened still raises in batch mode."""
        if self._owed_batches and self._fill is not None:
            return build_batch(
                [self._fill] * self._owed_batches.pop(), self.spec, self.decoders, self.counters
            )
        while True:
            samples, lasts = self._draw_batch(skip)
            if not samples or (self.drop_last and len(samples) < self.batch_size):
                if self._owed_batches:
                    raise ShardFormatError(
                        f"on_error='skip': {sum(self._owed_batches)} draws failed and no episode of this "
                        "reader gave a sample to repeat in their place"
                    )
                raise StopIteration
            good = [s for s in samples if s is not None]
            if good:
                skip.succeeded()
                self._fill = good[-1]
            if self._fill is not None:
                fill = self._fill
                batch = build_batch([s or fill for s in samples], self.spec, self.decoders, self.counters)
                for episode_index in lasts:
                    self.decoders.release(episode_index)
                return batch
            self._owed_batches.append(len(samples))

    def _draw_batch(self, skip: SkipPolicy) -> tuple[list[tuple[Episode, int] | None], list[int]]:
        """Up to ``batch_size`` draws as samples (None: failed), and the episodes whose last draw came."""
        samples: list[tuple[Episode, int] | None] = []
        lasts = []
        while len(samples) < self.batch_size:
            try:
                draw = next(self.draws)
            except StopIteration:
                break
            except SkippedDraw as skipped:
                skip.failed(skipped.error, skipped.episode_index, skipped.first)
                samples.append(None)
                continue
            episode_index = draw.episode.entry.episode_index
            if episode_index not in self._failed:
                try:  # open its decoders now: a bad segment fails here, not in the middle of the batch
                    for key in self.spec.video_keys:
                        self.decoders.get(draw.episode, key)
                except SKIPPABLE as exc:
                    self._failed[episode_index] = exc
                    self.decoders.release(episode_index)
                    skip.failed(exc, episode_index, first=True)
                    samples.append(None)
                else:
                    samples.append((draw.episode, draw.frame_index))
            else:
                skip.failed(self._failed[episode_index], episode_index, first=False)
                samples.append(None)
            if draw.last:
                lasts.append(episode_index)
                self._failed.pop(episode_index, None)
        return samples, lasts


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
