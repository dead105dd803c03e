"""DrawSchedule: which frame of which episode a reader yields next. Pure: no bytes, no I/O.

A reader's draws are a function of its :class:`~.order.SlotPlan`, a seed and the number of draws so far.
The schedule knows nothing of bytes or decoders: it says which episode each draw needs and when an
episode's last frame was drawn, and the stages after it (read-ahead, decode) act on that.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..format import EpisodeEntry
from .order import EpisodePart, SlotPlan


@dataclass(frozen=True, slots=True)
class Draw:
    """One frame to emit.

    ``admission`` numbers the episode's entries into the pool this epoch (0, 1, ...): padding may admit
    an episode a second time, so it, not ``episode_index``, names the bytes this draw needs.
    ``last``: the admission's last draw (its bytes and decoders can go after it).
    ``known_bad``: its episode was found bad by the reader that held this draw before an elastic restore
    (``on_error="skip"``, elastic.py): handed out as failed without reading the episode again.
    """

    admission: int
    entry: EpisodeEntry
    frame_index: int
    last: bool
    known_bad: bool = False


@dataclass(slots=True)
class _Pooled:
    """An episode (part) in the pool: its frames, and how many were drawn."""

    admission: int
    entry: EpisodeEntry
    frames: list[int]  # this episode's frames, in the order they will be drawn
    drawn: int = 0
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        self.remaining = len(self.frames)


class EpisodeShuffle(Iterator[Draw]):
    """A pool of up to ``pool_size`` episodes (and at most ``max_pool_frames`` frames, if set).

    Each draw is uniform over every frame not yet drawn from the pool: pick an episode with
    probability proportional to its remaining frames, then its next frame in a per-episode random
    permutation (``forward=True``: in increasing order, so each decoder only moves forward and
    overlapping windows reuse decoded frames; batches still mix as many episodes). An episode leaves
    the pool once all its frames were drawn, and the next entry takes its place. With ``shuffle=False``
    the pool holds one episode and frames come in order.
    """

    def __init__(
        self,
        parts: list[EpisodePart],
        *,
        pool_size: int,
        max_pool_frames: int | None,
        seed: int,
        shuffle: bool,
        forward: bool,
        first_admission: int = 0,
    ) -> None:
        self.parts = parts
        self.pool_size = pool_size if shuffle else 1
        self.max_pool_frames = max_pool_frames
        self.shuffle = shuffle
        self.forward = forward
        self.first_admission = first_admission
        self._rng = random.Random(seed)
        self._pool: list[_Pooled] = []
        self._next_entry = 0
        self.draws = 0

    def __next__(self) -> Draw:
        self._fill()
        if not self._pool:
            raise StopIteration
        pooled = self._pick()
        frame_index = pooled.frames[pooled.drawn]
        pooled.drawn += 1
        pooled.remaining -= 1
        self.draws += 1
        if pooled.remaining == 0:
            self._pool.remove(pooled)
        return Draw(pooled.admission, pooled.entry, frame_index, last=pooled.remaining == 0)

    def _pool_frames(self) -> int:
        return sum(s.remaining for s in self._pool)

    def _fill(self) -> None:
        while self._next_entry < len(self.parts) and len(self._pool) < self.pool_size:
            if (
                self._pool
                and self.max_pool_frames is not None
                and self._pool_frames() >= self.max_pool_frames
            ):
                return
            part = self.parts[self._next_entry]
            admission = self.first_admission + self._next_entry
            self._next_entry += 1
            frames = list(range(part.frame_from, part.frame_to))
            if self.shuffle and not self.forward:
                self._rng.shuffle(frames)
            self._pool.append(_Pooled(admission, part.entry, frames))

    def _pick(self) -> _Pooled:
        if not self.shuffle:
            return self._pool[0]
        target = self._rng.randrange(self._pool_frames())
        for pooled in self._pool:
            if target < pooled.remaining:
                return pooled
            target -= pooled.remaining
        raise AssertionError("unreachable: target is below the pool's frame count")


class DrawSchedule(Iterator[Draw]):
    """A reader's draws for one epoch: its pool, then repeats of its first draws up to the plan's
    ``num_samples`` (equal counts per rank, as ``DistributedSampler`` pads).

    The repeats come from a second pool over the plan's ``pad_parts`` with the same seed, so they are
    the reader's own first draws again. The state is one integer, :attr:`draws`; :meth:`skip` replays
    draws without a byte of I/O, so a restored reader fetches only the episodes it still needs.
    """

    def __init__(
        self,
        plan: SlotPlan,
        *,
        seed: int,
        pool_size: int,
        max_pool_frames: int | None,
        shuffle: bool,
        forward: bool,
    ) -> None:
        self.plan = plan
        self.seed = seed
        self.pool_size = pool_size
        self.max_pool_frames = max_pool_frames
        self.shuffle = shuffle
        self.forward = forward
        self.main = self._pool(plan.parts, first_admission=0)
        self.main_frames = plan.num_frames
        self.pad: EpisodeShuffle | None = None

    def _pool(self, parts: list[EpisodePart], first_admission: int) -> EpisodeShuffle:
        return EpisodeShuffle(
            parts,
            pool_size=self.pool_size,
            max_pool_frames=self.max_pool_frames,
            seed=self.seed,
            shuffle=self.shuffle,
            forward=self.forward,
            first_admission=first_admission,
        )

    @property
    def num_samples(self) -> int:
        return self.plan.num_samples

    @property
    def draws(self) -> int:
        return self.main.draws + (self.pad.draws if self.pad is not None else 0)

    def __next__(self) -> Draw:
        if self.draws >= self.plan.num_samples:
            raise StopIteration
        if self.pad is None and self.main.draws < self.main_frames:
            return next(self.main)
        if self.pad is None:
            self.pad = self._pool(self.plan.pad_parts, first_admission=len(self.plan.parts))
        return next(self.pad)

    def skip(self, num_draws: int) -> None:
        """Advance by ``num_draws`` draws (a restore); raises StopIteration if there are fewer left."""
        for _ in range(num_draws):
            next(self)
