"""``on_error="skip"``: a bad episode is counted, logged once and replaced, up to a limit in a row.

What "skip" means for the number of items: a reader's item count is fixed by its plan (equal across
DDP ranks and DataLoader workers, so no rank waits on a collective the others never reach). A skipped
episode's draws therefore still produce items: each is the reader's last good item again (the next
good one when none came yet). Counts stay equal; the skipped frames are replaced by repeats, which
``timing_stats()`` counts (``skipped_episodes``, ``skipped_draws``).

What is skippable: a malformed episode (:class:`ShardFormatError`: checksum, tar, members, rows,
meta.json, an mp4 that does not open or has the wrong frame count) and a missing shard
(``FileNotFoundError``). Storage errors that outlast the retry policy still raise: skipping every
episode of an unreachable bucket would train on repeats. Past ``max_consecutive_errors`` episodes in a
row without a good item in between, the last error is raised.
"""

from __future__ import annotations

import logging

from ..format import ShardFormatError
from .telemetry import Counters

logger = logging.getLogger(__name__)

SKIPPABLE = (ShardFormatError, FileNotFoundError)


class SkippedDraw(Exception):
    """A draw handed out without an episode (its episode failed): the consumer substitutes an item."""

    def __init__(self, error: Exception, episode_index: int, first: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.episode_index = episode_index
        self.first = first  # the episode's first failed draw: count and log it once


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
