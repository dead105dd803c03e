"""EpisodeReadAhead: hands out the schedule's draws with their episodes, reading ahead along them.

The stage pulls draws from the :class:`~.schedule.DrawSchedule` ahead of its consumer and keeps them in
a queue. The first draw of each admission in that queue says which episode is needed, and when: the
stage reads those episodes in that order, in background threads, several reads in flight, adjacent
episodes of a shard coalesced into one ranged GET, at most ``budget_bytes`` of read-but-unclaimed
episodes held. One schedule decides the order; nothing replays it. ``budget_bytes=0`` reads each
episode when its first draw is handed out.

State (:mod:`.stage`): ``{"draws": n}``, the draws handed out, which is the schedule's own state at
the consumer's position. The queue and the reads under way are rebuilt from the schedule after a
restore; nothing here goes into a checkpoint. With ``skip_errors`` (``on_error="skip"``), a draw whose
episode failed to read is handed out as a :class:`~.skip.FailedDraw`, for :mod:`.skip` to replace, and
so is a ``known_bad`` draw (an elastic restore's, elastic.py), whose episode is not read at all.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from ..format import EpisodeEntry, ShardFormatError
from .episodes import Episode, EpisodeSource
from .schedule import Draw, DrawSchedule
from .stage import StageState
from .telemetry import Counters

if TYPE_CHECKING:
    from .elastic import ResumedSchedule

# What on_error="skip" may skip: a malformed episode and a missing shard (reader/skip.py says why).
SKIPPABLE = (ShardFormatError, FileNotFoundError)

# At most this many draws are computed ahead of the consumer, whatever the byte budget: ~100 bytes each.
MAX_DRAWS_AHEAD = 1 << 14


@dataclass(frozen=True, slots=True)
class EpisodeDraw:
    """A draw with its episode's bytes."""

    episode: Episode
    frame_index: int
    last: bool  # the episode's last draw of this admission: its decoders can go
    position: int  # the draw's number in the reader's schedule (0, 1, ...)


@dataclass(frozen=True, slots=True)
class FailedDraw:
    """A draw whose episode failed to read (``on_error="skip"``): :mod:`.skip` hands out another."""

    error: Exception
    episode_index: int
    first: bool  # the admission's first failed draw: counted and logged once
    last: bool


class EpisodeReadAhead(Iterator[EpisodeDraw | FailedDraw]):
    """``schedule``'s draws, each with its episode read by ``source``; a run of adjacent episodes read
    ahead is capped at ``budget_bytes // num_threads`` so that several runs stream at once."""

    def __init__(
        self,
        schedule: DrawSchedule | ResumedSchedule,
        source: EpisodeSource,
        counters: Counters,
        *,
        budget_bytes: int,
        num_threads: int,
        skip_errors: bool = False,
    ) -> None:
        if budget_bytes < 0 or num_threads < 1:
            raise ValueError(
                f"EpisodeReadAhead: got budget_bytes={budget_bytes}, num_threads={num_threads}; "
                "expected >= 0 and >= 1"
            )
        self.schedule = schedule
        self.source = source
        self.counters = counters
        self.budget_bytes = budget_bytes
        self.run_bytes = max(budget_bytes // num_threads, 1)
        self.draws = schedule.draws  # handed out
        self._ahead: deque[Draw] = deque()  # drawn from the schedule, not yet handed out
        self._unread: deque[Draw] = deque()  # first draws in _ahead of admissions not being read
        self._unread_bytes = 0
        self._seen: set[int] = set()  # admissions drawn ahead and not yet finished
        self._reads: dict[int, tuple[Future[list[Episode]], int]] = {}  # admission -> (read, position)
        self._read_bytes = 0  # of reads started and not yet claimed
        self._episodes: dict[int, Episode] = {}  # admission -> episode, from its first to its last draw
        self._executor = ThreadPoolExecutor(num_threads, "lerobot-wds-read") if budget_bytes else None
        self.closed = False
        # on_error="skip": an episode that fails to read gives a FailedDraw for each of its draws
        self.skip_errors = skip_errors
        self._failed: dict[int, Exception] = {}  # admission -> its error, from its first to its last draw

    def state(self) -> dict[str, int]:
        return {"draws": self.draws}

    def restore(self, state: StageState) -> None:
        """Skip the schedule to ``state["draws"]`` (no I/O)."""
        self.schedule.skip(int(state["draws"]) - self.draws)
        self.draws = self.schedule.draws

    def __next__(self) -> EpisodeDraw | FailedDraw:
        self._look_ahead()
        if not self._ahead:
            self.close()
            raise StopIteration
        draw = self._ahead.popleft()
        failed, first = self._failed.get(draw.admission), False
        if failed is None and draw.known_bad and self.skip_errors:  # skip.py counts its episode once
            failed, first = _known_bad_error(draw), True
        episode = self._episodes.get(draw.admission) if failed is None else None
        if episode is None and failed is None:
            try:
                episode = self._claim(draw)
            except SKIPPABLE as exc:
                if not self.skip_errors:
                    raise
                failed = self._failed[draw.admission] = exc
                first = True
        if draw.last:
            self._episodes.pop(draw.admission, None)
            self._failed.pop(draw.admission, None)
            self._seen.discard(draw.admission)
        position = self.draws
        self.draws += 1
        if failed is not None:
            return FailedDraw(failed, draw.entry.episode_index, first, draw.last)
        return EpisodeDraw(cast(Episode, episode), draw.frame_index, draw.last, position)  # claimed above

    def close(self) -> None:
        """Stop reading ahead; reads under way finish in their threads and are dropped."""
        self._reads.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self.closed = True

    def _claim(self, draw: Draw) -> Episode:
        """The episode of an admission's first draw: from its read ahead, or read now."""
        read = self._reads.pop(draw.admission, None)
        if read is None:  # not read ahead (no budget)
            self._unread.remove(draw)
            self._unread_bytes -= draw.entry.size_bytes
            episode = self.source.fetch(draw.entry)
            self.counters.add(fetch_waits=1)
        else:
            future, position = read
            if not future.done():
                self.counters.add(fetch_waits=1)
            self._read_bytes -= draw.entry.size_bytes
            try:
                episode = future.result()[position]
            except SKIPPABLE:
                if not self.skip_errors:
                    raise
                # A run of adjacent episodes fails as a whole: read this one alone for its own verdict.
                episode = self.source.fetch(draw.entry)
        self._episodes[draw.admission] = episode
        return episode

    def _look_ahead(self) -> None:
        """Draw ahead until the next draw is known and the episodes to read fill the budget, then read."""
        while len(self._ahead) < MAX_DRAWS_AHEAD:
            if self._ahead and self._read_bytes + self._unread_bytes >= self.budget_bytes:
                break
            draw = next(self.schedule, None)
            if draw is None:
                break
            self._ahead.append(draw)
            if draw.known_bad and self.skip_errors:  # never read: handed out failed
                continue
            if draw.admission not in self._seen:  # its first draw (or its first since a restore)
                self._seen.add(draw.admission)
                self._unread.append(draw)
                self._unread_bytes += draw.entry.size_bytes
        if self._executor is not None:
            self._start_reads(self._executor)

    def _start_reads(self, executor: ThreadPoolExecutor) -> None:
        while run := self._next_run():
            future = executor.submit(self.source.fetch_run, [d.entry for d in run])
            for position, draw in enumerate(run):
                self._reads[draw.admission] = (future, position)
                self._read_bytes += draw.entry.size_bytes

    def _next_run(self) -> list[Draw]:
        """The next unread episodes, adjacent in one shard, that fit in the budget (empty: none).
        One episode larger than the budget is read alone when nothing else is."""
        run: list[Draw] = []
        run_bytes = 0
        while self._unread:
            draw = self._unread[0]
            size = draw.entry.size_bytes
            if run and not _adjacent(run[-1].entry, draw.entry):
                break
            if self._read_bytes + run_bytes + size > self.budget_bytes and (run or self._reads):
                break
            if run and run_bytes + size > self.run_bytes:
                break
            run.append(self._unread.popleft())
            self._unread_bytes -= size
            run_bytes += size
        return run


def _known_bad_error(draw: Draw) -> ShardFormatError:
    return ShardFormatError(
        f"episode {draw.entry.episode_index} was found bad before an elastic restore (on_error='skip')"
    )


def _adjacent(previous: EpisodeEntry, entry: EpisodeEntry) -> bool:
    return entry.shard == previous.shard and entry.offset_bytes == previous.offset_bytes + previous.size_bytes
