"""DecodeAhead: items built on a few threads ahead of the consumer, handed out in draw order.

Where it pays: a reader without DataLoader workers (``num_workers=0``), whose process would otherwise
decode on one core while the others idle. torchcodec (FFmpeg) and numpy release the GIL while they
decode and convert, so ``decode_threads`` threads decode up to that many items at once.

Exactness: the items and their order are those of :class:`~.pipeline.ItemStream`. A decoder belongs to
one (episode, camera) and is not thread-safe, so an episode's items are built one at a time (a lock
per episode); draws of different episodes (the pool's usual case) run in parallel. Decoders go with
an episode's last draw once it has been handed out, after every earlier item of that episode. The
stage's state (:mod:`.stage`) is its source's as of the last item handed out, not built: each draw taken
ahead carries the source's state after it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .frames import DecoderCache
from .items import ItemSpec, build_item
from .readahead import EpisodeDraw
from .stage import Stage, StageState
from .telemetry import Counters


class DecodeAhead(Iterator[dict[str, Any]]):
    """Each draw's item, as :class:`~.pipeline.ItemStream`, built ``2 * threads`` draws ahead."""

    def __init__(
        self,
        draws: Stage[EpisodeDraw],
        spec: ItemSpec,
        decoders: DecoderCache,
        counters: Counters,
        threads: int,
    ) -> None:
        self.draws = draws
        self.spec = spec
        self.decoders = decoders
        self.counters = counters
        self.depth = 2 * threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="lerobot-wds-decode")
        # (draw, its item being built, the source's state just after the draw)
        self._ahead: deque[tuple[EpisodeDraw, Future[tuple[dict[str, Any], float]], dict[str, Any]]] = deque()
        self._state = draws.state()  # as of the last item handed out
        # One lock per episode with items in flight, dropped with its last one: an episode can be in the
        # pool twice at once (an elastic resume's readers replay two base readers that share a boundary
        # episode), and both admissions share its decoder, which two threads must never use at once.
        self._locks: dict[int, tuple[threading.Lock, int]] = {}  # episode -> (lock, items in flight)
        self._failure: BaseException | None = None  # raised once the items before it are handed out
        self._exhausted = False

    def state(self) -> dict[str, Any]:
        return self._state

    def restore(self, state: StageState) -> None:
        self.draws.restore(state)
        self._state = self.draws.state()

    def __next__(self) -> dict[str, Any]:
        self._fill()
        if not self._ahead:
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            raise StopIteration
        draw, future, self._state = self._ahead.popleft()
        item, seconds = future.result()
        self.counters.add(decode_s=seconds, items=1)  # counted as handed out, as ItemStream counts
        episode_index = draw.episode.entry.episode_index
        lock, in_flight = self._locks[episode_index]
        if in_flight == 1:
            del self._locks[episode_index]
        else:
            self._locks[episode_index] = (lock, in_flight - 1)
        if draw.last:
            self.decoders.release(episode_index)
        return item

    def _fill(self) -> None:
        while len(self._ahead) < self.depth and not self._exhausted and self._failure is None:
            try:
                draw = next(self.draws)
            except StopIteration:
                self._exhausted = True
                return
            except Exception as failure:  # e.g. an episode that cannot be read: after the items before it
                self._failure = failure
                return
            episode_index = draw.episode.entry.episode_index
            lock, in_flight = self._locks.get(episode_index, (threading.Lock(), 0))
            self._locks[episode_index] = (lock, in_flight + 1)
            self._ahead.append((draw, self._pool.submit(self._build, draw, lock), self.draws.state()))

    def _build(self, draw: EpisodeDraw, lock: threading.Lock) -> tuple[dict[str, Any], float]:
        with lock:
            started = time.perf_counter()
            item = build_item(draw.episode, draw.frame_index, self.spec, self.decoders)
            return item, time.perf_counter() - started

    def close(self) -> None:
        """Drop the items built ahead and stop the threads (a running decode finishes first)."""
        for _, future, _ in self._ahead:
            future.cancel()
        self._ahead.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.draws.close()
