"""Read ahead: the episodes a pool will fetch, in the order it will fetch them, in background threads.

The pool fetches an episode on its first draw. Draws are a pure function of (entries, seed, draws so
far), so a twin pool built the same way and advanced to the same draw knows, without a byte of I/O,
exactly which episode the real pool will fetch next (:class:`FetchOrder`). :class:`EpisodePrefetcher`
walks that order ahead of the pool: several reads in flight, adjacent episodes of one shard coalesced
into one large sequential ranged GET, at most ``budget_bytes`` of read-but-unclaimed episodes held. The
pool then waits on the network only when the budget cannot cover its latency.

Nothing here needs saving in a checkpoint: a restored reader builds a new twin at the restored draw.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .. import format as fmt
from ..format import EpisodeEntry
from .episodes import Episode
from .pool import PaddedPool

# An episode's place in the fetch order: (episode_index, occurrence); equal-count padding repeats episodes.
_Key = tuple[int, int]


class FetchOrder(Iterator[EpisodeEntry]):
    """The entries a pool will fetch, in order, found by replaying its draws on a twin that fetches nothing.

    ``make_twin(fetch)`` must build the pool exactly as the real one was built, with ``fetch`` as its fetch
    function; ``draws`` is the real pool's draw count when the order is wanted (after a restore).
    """

    def __init__(self, make_twin: Callable[[Callable[[EpisodeEntry], Episode]], PaddedPool], draws: int):
        self._pending: deque[EpisodeEntry] = deque()
        self._twin = make_twin(self._record)
        self._twin.skip(draws)

    def __next__(self) -> EpisodeEntry:
        while not self._pending:
            next(self._twin)  # StopIteration once the twin has drawn its last frame
        return self._pending.popleft()

    def _record(self, entry: EpisodeEntry) -> Episode:
        self._pending.append(entry)
        return _unfetched(entry)


def _unfetched(entry: EpisodeEntry) -> Episode:
    """A stand-in holding no data: the twin pool only needs something that is not None."""
    meta = fmt.EpisodeMeta(
        episode_index=entry.episode_index, num_frames=entry.num_frames, tasks=[], task_indices=[], cameras={}
    )
    return Episode(entry=entry, meta=meta, columns={}, videos={})


@dataclass(slots=True)
class PrefetchStats:
    hits: int = 0  # claimed from a read started ahead
    waits: int = 0  # of which the read had not finished when claimed (the pool waited on the network)
    misses: int = 0  # read on demand: not in the fetch order's window
    requests: int = 0  # ranged reads started ahead (one per run of adjacent episodes)


class EpisodePrefetcher:
    """Reads ``order`` ahead with ``num_threads`` threads, holding at most ``budget_bytes`` (one episode
    may exceed it alone). ``fetch_run(entries)`` reads adjacent episodes of one shard with one ranged read;
    a run is capped at ``budget_bytes // num_threads`` so that several runs stream at once.
    :meth:`fetch` is the pool's fetch function.
    """

    def __init__(
        self,
        order: Iterator[EpisodeEntry],
        fetch_run: Callable[[list[EpisodeEntry]], list[Episode]],
        *,
        budget_bytes: int,
        num_threads: int,
    ) -> None:
        if budget_bytes < 1 or num_threads < 1:
            raise ValueError(
                f"EpisodePrefetcher: got budget_bytes={budget_bytes}, num_threads={num_threads}; "
                "expected both >= 1"
            )
        self.fetch_run = fetch_run
        self.budget_bytes = budget_bytes
        self.run_bytes = max(budget_bytes // num_threads, 1)
        self.stats = PrefetchStats()
        self._order = order
        self._peeked: tuple[_Key, EpisodeEntry] | None = None
        self._scheduled: Counter[int] = Counter()  # per episode: occurrences taken from the order
        self._claimed: Counter[int] = Counter()  # per episode: occurrences handed to the pool
        self._ahead: dict[_Key, tuple[Future[list[Episode]], int]] = {}
        self._held_bytes = 0
        self.closed = False
        self._executor = ThreadPoolExecutor(num_threads, thread_name_prefix="lerobot-wds-prefetch")
        self._refill()

    def fetch(self, entry: EpisodeEntry) -> Episode:
        key = (entry.episode_index, self._claimed[entry.episode_index])
        self._claimed[entry.episode_index] += 1
        ahead = self._ahead.pop(key, None)
        if ahead is None:  # the order and the pool disagree: only if the twin was built differently
            self.stats.misses += 1
            return self.fetch_run([entry])[0]
        future, position = ahead
        self.stats.hits += 1
        self.stats.waits += not future.done()
        episodes = future.result()
        self._held_bytes -= entry.size_bytes
        self._refill()
        return episodes[position]

    def close(self) -> None:
        """Stop reading ahead; reads under way finish in their threads and are dropped."""
        self._ahead.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.closed = True

    def _refill(self) -> None:
        while run := self._next_run():
            future = self._executor.submit(self.fetch_run, [entry for _, entry in run])
            self.stats.requests += 1
            for position, (key, entry) in enumerate(run):
                self._ahead[key] = (future, position)
                self._held_bytes += entry.size_bytes

    def _next_run(self) -> list[tuple[_Key, EpisodeEntry]]:
        """The next adjacent episodes of one shard that fit in the budget (empty: none)."""
        run: list[tuple[_Key, EpisodeEntry]] = []
        run_bytes = 0
        while (item := self._peek()) is not None:
            entry = item[1]
            if run and not _adjacent(run[-1][1], entry):
                break
            fits = self._held_bytes + run_bytes + entry.size_bytes <= self.budget_bytes
            if not fits and (run or self._ahead):
                break
            if run and run_bytes + entry.size_bytes > self.run_bytes:
                break
            run.append(item)
            run_bytes += entry.size_bytes
            self._peeked = None
        return run

    def _peek(self) -> tuple[_Key, EpisodeEntry] | None:
        if self._peeked is None:
            entry = next(self._order, None)
            if entry is None:
                return None
            self._peeked = ((entry.episode_index, self._scheduled[entry.episode_index]), entry)
            self._scheduled[entry.episode_index] += 1
        return self._peeked


def _adjacent(previous: EpisodeEntry, entry: EpisodeEntry) -> bool:
    return entry.shard == previous.shard and entry.offset_bytes == previous.offset_bytes + previous.size_bytes
