"""``on_error="skip"``: a bad episode is counted, logged once and replaced, up to a limit in a row.

What "skip" means for the number of items: a reader's item count is fixed by its plan (equal across
DDP ranks and DataLoader workers, so no rank waits on a collective the others never reach). A skipped
episode's draws therefore still produce items: each failed draw is replaced by the reader's last good
draw before it (the first good one after it when none came yet). Counts stay equal; the skipped frames
are replaced by repeats, which ``timing_stats()`` counts (``skipped_episodes``, ``skipped_draws``).

What fails a draw: its episode failed to read (:class:`~.readahead.FailedDraw`), or an earlier draw of
its episode failed, or its item fails to build (a segment that does not open, a frame that does not
decode). Item mode and batch mode follow the same rule draw by draw, so a batch holds exactly the items
that item mode would have given: a batch is built from its draws in one go, and only when that fails
are its draws built one by one to find which fail.

What is skippable: a malformed episode (:class:`ShardFormatError`: checksum, tar, members, rows,
meta.json, an mp4 that does not open, has the wrong frame count or a frame that does not decode) and
a missing shard (``FileNotFoundError``). Storage errors that outlast the retry policy still raise:
skipping every episode of an unreachable bucket would train on repeats. Past
``max_consecutive_errors`` episodes in a row without a good draw in between, the last error is raised.

State (:mod:`.stage`): besides the source's ``draws``, ``skip_fill`` (the position of the last good
draw, -1 for none), ``skip_owed`` (repeats of it still to hand out), ``skip_failed`` (episodes failed,
to read or to build an item, whose admission has draws left) and ``skip_consecutive`` (bad episodes in
a row so far): a restore refetches the fill's episode, counts an episode of ``skip_failed`` once, and
continues exactly, up to the same ``max_consecutive_errors`` raise. A state without the newer keys
(``skip_consecutive``) restores with their start values.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeVar, cast

from ..format import ShardFormatError
from .frames import DecoderCache
from .readahead import SKIPPABLE, EpisodeDraw, FailedDraw
from .stage import Stage, StageState
from .telemetry import Counters

logger = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["SKIPPABLE", "SkipBadEpisodes", "SkipPolicy"]


class SkipPolicy:
    """Counts and logs skipped episodes; raises past ``max_consecutive`` failed episodes in a row."""

    def __init__(self, max_consecutive: int, counters: Counters) -> None:
        self.max_consecutive = max_consecutive
        self.counters = counters
        self.consecutive = 0

    def failed(self, error: Exception, episode_index: int, first: bool) -> None:
        self.counters.add(skipped_draws=1)
        if not first:
            return
        self.counters.add(skipped_episodes=1)
        self.consecutive += 1
        if self.consecutive > self.max_consecutive:
            error.add_note(
                f"on_error='skip': {self.consecutive} episodes failed in a row; "
                f"expected at most max_consecutive_errors={self.max_consecutive}"
            )
            raise error
        logger.warning("skipping episode %d (on_error='skip'): %s", episode_index, error)

    def succeeded(self) -> None:
        self.consecutive = 0

    def mark(self) -> tuple[int, int, int]:
        return self.consecutive, self.counters.skipped_draws, self.counters.skipped_episodes

    def rollback(self, mark: tuple[int, int, int]) -> None:
        """Back to :meth:`mark` (a batch's draws are resolved again, one by one)."""
        consecutive, draws, episodes = mark
        self.consecutive = consecutive
        self.counters.add(
            skipped_draws=draws - self.counters.skipped_draws,
            skipped_episodes=episodes - self.counters.skipped_episodes,
        )


class SkipBadEpisodes(Iterator[T]):
    """Items (``batch_size=None``) or batches of the source's draws, failed draws replaced (see above).

    Args:
        draws: the read-ahead stage (its failed reads come as :class:`FailedDraw`).
        build_item: one draw's item; raises a SKIPPABLE error if the draw's episode is bad.
        build_batch: a batch of draws (batch mode), or None (item mode: each value is an item).
        batch_size, drop_last: batch mode's (a reader's last batch is smaller unless ``drop_last``).
        fill_at: the draw at a schedule position, its episode read (a restore's fill).
        fallback: the fill before any good draw, in an epoch resumed elastically (elastic.py): the last
            good draw of the saved reader this one continues; its position is -1 (not this reader's), so
            a state saved while it is the fill restores it again.
    """

    def __init__(
        self,
        draws: Stage[EpisodeDraw | FailedDraw],
        policy: SkipPolicy,
        decoders: DecoderCache,
        build_item: Callable[[EpisodeDraw], Any],
        fill_at: Callable[[int], EpisodeDraw],
        *,
        fallback: Callable[[], EpisodeDraw] | None = None,
        build_batch: Callable[[Sequence[EpisodeDraw]], T] | None = None,
        batch_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        self.draws = draws
        self.policy = policy
        self.decoders = decoders
        self.build_item = build_item
        self.build_batch = build_batch
        self.fill_at = fill_at
        self.fallback = fallback
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.counters = policy.counters
        self._fill: EpisodeDraw | None = None  # the last good draw handed out
        self._fill_item: Any = None  # its item (item mode)
        self._owed = 0  # repeats of the fill still to hand out (failed draws before any good one)
        self._leading = 0  # failed draws found before any good one, not yet owed
        self._failed: dict[int, Exception] = {}  # episodes failed here, until their last draw
        self._replay: deque[EpisodeDraw | FailedDraw] = deque()  # a batch's draws, resolved again
        self._taken: list[EpisodeDraw | FailedDraw] = []  # the source's draws taken for this value

    def state(self) -> dict[str, Any]:
        source = self.draws.state()
        return {
            **source,
            "draws": source["draws"] - len(self._replay),  # draws a batch's retry took back, not used
            "skip_fill": self._fill.position if self._fill is not None else -1,
            "skip_owed": self._owed,
            "skip_failed": sorted(self._failed),
            "skip_consecutive": self.policy.consecutive,
        }

    def restore(self, state: StageState) -> None:
        self.draws.restore(state)
        fill = int(state.get("skip_fill", -1))
        self._fill = self.fill_at(fill) if fill >= 0 else None
        self._owed = int(state.get("skip_owed", 0))
        self.policy.consecutive = int(state.get("skip_consecutive", 0))
        for episode_index in state.get("skip_failed", []):
            self._failed[int(episode_index)] = ShardFormatError(
                f"episode {episode_index} failed before the reader's state was saved"
            )

    def close(self) -> None:
        self.draws.close()

    def __next__(self) -> T:
        if self.build_batch is None:
            return cast(T, self._next_item())  # item mode: T is the item
        return self._next_batch(self.build_batch)

    def _next_item(self) -> Any:
        draw, item = self._resolve(check=True)
        if item is None:  # a repeat of the fill
            if self._fill_item is None:  # restored: built again from the fill's episode
                self._fill_item = self.build_item(draw)
            return dict(self._fill_item)
        self._fill_item = item
        if draw.last:
            self.decoders.release(draw.episode.entry.episode_index)
        return item

    def _next_batch(self, build_batch: Callable[[Sequence[EpisodeDraw]], T]) -> T:
        mark = (self._fill, self._fill_item, self._owed, dict(self._failed), self.policy.mark())
        self._taken = []
        draws = self._take_batch(check=False)
        try:
            batch = build_batch(draws)
        except SKIPPABLE:  # some draw's item fails: find which, one by one, as item mode would
            self._fill, self._fill_item, self._owed, self._failed, policy = mark
            self.policy.rollback(policy)
            self._replay.extendleft(reversed(self._taken))
            self._taken = []
            draws = self._take_batch(check=True)
            batch = build_batch(draws)
        for draw in draws:
            if draw.last:
                self.decoders.release(draw.episode.entry.episode_index)
        return batch

    def _take_batch(self, check: bool) -> list[EpisodeDraw]:
        draws: list[EpisodeDraw] = []
        while len(draws) < self.batch_size:
            try:
                draws.append(self._resolve(check)[0])
            except StopIteration:
                break
        if not draws or (self.drop_last and len(draws) < self.batch_size):
            raise StopIteration
        return draws

    def _pull(self) -> EpisodeDraw | FailedDraw:
        draw = self._replay.popleft() if self._replay else next(self.draws)
        self._taken.append(draw)
        return draw

    def _resolve(self, check: bool) -> tuple[EpisodeDraw, Any]:
        """The next draw to hand out, and its item if ``check`` built it (None for a repeat of the fill).
        ``check=False`` (a batch's first try) trusts every draw whose episode read."""
        if self._owed:
            self._owed -= 1
            return self._repeat(), None
        while True:
            try:
                draw = self._pull()
            except StopIteration:
                if self._leading:
                    raise ShardFormatError(
                        f"on_error='skip': {self._leading} draws failed and no episode of this reader gave "
                        "an item to repeat in their place"
                    ) from None
                raise
            if isinstance(draw, FailedDraw):
                self._read_failed(draw)
                item = None
            else:
                item = self._check(draw, check)
            if item is not None:  # a good draw: an EpisodeDraw
                draw = cast(EpisodeDraw, draw)
                self.policy.succeeded()
                self._fill, self._fill_item = draw, None
                self._owed, self._leading = self._leading, 0
                return draw, (item if check else True)
            if self._fill is None and self.fallback is not None:
                self._fill, self._fill_item = self.fallback(), None
            if self._fill is not None:
                return self._repeat(), None
            self._leading += 1

    def _read_failed(self, draw: FailedDraw) -> None:
        """Count a draw whose episode failed to read: a new bad episode at its admission's first draw,
        unless a restored state already counted it (its later draws read it again and fail again)."""
        first = draw.first and draw.episode_index not in self._failed
        self._failed.setdefault(draw.episode_index, draw.error)
        self.policy.failed(draw.error, draw.episode_index, first)
        if draw.last:
            self._failed.pop(draw.episode_index, None)

    def _repeat(self) -> EpisodeDraw:
        # Never "last": the fill's decoders go with its own last draw (or with the cache's LRU after it).
        return replace(cast(EpisodeDraw, self._fill), last=False)

    def _check(self, draw: EpisodeDraw, check: bool) -> Any:
        """``draw``'s item (``True`` unbuilt when not ``check``), or None if its episode failed."""
        episode_index = draw.episode.entry.episode_index
        error = self._failed.get(episode_index)
        item: Any = True
        if error is not None:
            self.policy.failed(error, episode_index, first=False)
        elif check:
            try:
                item = self.build_item(draw)
            except SKIPPABLE as exc:
                error = self._failed[episode_index] = exc
                self.decoders.release(episode_index)
                self.policy.failed(exc, episode_index, first=True)
        if draw.last and error is not None:
            self._failed.pop(episode_index, None)
            self.decoders.release(episode_index)
        return None if error is not None else item
