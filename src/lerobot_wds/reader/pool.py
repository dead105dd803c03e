"""EpisodeShuffle: a pool of whole episodes, drawn from frame by frame so a batch mixes many episodes."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ..format import EpisodeEntry
from .episodes import Episode


@dataclass(frozen=True, slots=True)
class Draw:
    """One frame to emit: the episode (still encoded) and the episode-local frame index."""

    episode: Episode
    frame_index: int


@dataclass(slots=True)
class _Slot:
    entry: EpisodeEntry
    frames: list[int]  # this episode's frames, in the order they will be drawn
    episode: Episode | None = None  # fetched on the first draw that needs it
    drawn: int = 0
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        self.remaining = len(self.frames)


class EpisodeShuffle:
    """Holds up to ``pool_size`` episodes (and at most ``max_pool_frames`` frames, if set).

    Each draw is uniform over every frame not yet drawn from the pool: pick an episode with
    probability proportional to its remaining frames, then its next frame in a per-episode random
    permutation (``forward=True``: in increasing order, so each decoder only moves forward and overlapping
    windows reuse decoded frames; batches still mix as many episodes). An episode leaves the pool
    (and ``on_evict`` frees its decoders) once all its frames were drawn, and the next entry takes its
    place. With ``shuffle=False`` the pool holds one episode and frames come in order.

    Every draw is a function of (entries, seed, number of draws so far) and needs only the entries'
    frame counts: the state is one integer, and :meth:`skip` replays draws without fetching a byte,
    so a restored pool fetches only the episodes it still holds.
    """

    def __init__(
        self,
        entries: list[EpisodeEntry],
        fetch: Callable[[EpisodeEntry], Episode],
        *,
        pool_size: int,
        max_pool_frames: int | None,
        seed: int,
        shuffle: bool,
        forward: bool = False,
        on_evict: Callable[[int], None] | None = None,
    ) -> None:
        self.entries = entries
        self.fetch = fetch
        self.pool_size = pool_size if shuffle else 1
        self.max_pool_frames = max_pool_frames
        self.shuffle = shuffle
        self.forward = forward
        self.on_evict = on_evict
        self._rng = random.Random(seed)
        self._slots: list[_Slot] = []
        self._next_entry = 0
        self.draws = 0

    def __iter__(self) -> EpisodeShuffle:
        return self

    def __next__(self) -> Draw:
        slot, frame_index = self._draw()
        if slot.episode is None:
            slot.episode = self.fetch(slot.entry)
        episode = slot.episode
        if slot.remaining == 0:
            slot.episode = None
        return Draw(episode, frame_index)

    def skip(self, num_draws: int) -> None:
        """Advance by ``num_draws`` draws without fetching (restore); raises if there are fewer left."""
        for _ in range(num_draws):
            self._draw()

    def _draw(self) -> tuple[_Slot, int]:
        self._fill()
        if not self._slots:
            raise StopIteration
        slot = self._pick()
        frame_index = slot.frames[slot.drawn]
        slot.drawn += 1
        slot.remaining -= 1
        self.draws += 1
        if slot.remaining == 0:
            self._slots.remove(slot)
            if self.on_evict is not None:
                self.on_evict(slot.entry.episode_index)
        return slot, frame_index

    def _pool_frames(self) -> int:
        return sum(s.remaining for s in self._slots)

    def _fill(self) -> None:
        while self._next_entry < len(self.entries) and len(self._slots) < self.pool_size:
            if (
                self._slots
                and self.max_pool_frames is not None
                and self._pool_frames() >= self.max_pool_frames
            ):
                return
            entry = self.entries[self._next_entry]
            self._next_entry += 1
            frames = list(range(entry.num_frames))
            if self.shuffle and not self.forward:
                self._rng.shuffle(frames)
            self._slots.append(_Slot(entry, frames))

    def _pick(self) -> _Slot:
        if not self.shuffle:
            return self._slots[0]
        target = self._rng.randrange(self._pool_frames())
        for slot in self._slots:
            if target < slot.remaining:
                return slot
            target -= slot.remaining
        raise AssertionError("unreachable: target is below the pool's frame count")


class PaddedPool:
    """A reader's pool, then repeats of its first draws up to ``num_samples`` (equal counts per rank).

    The repeats come from a second pool over ``pad_entries`` with the same seed, so they are the
    reader's own first draws again; the state is still the number of draws.
    """

    def __init__(
        self,
        make_pool: Callable[[list[EpisodeEntry]], EpisodeShuffle],
        entries: list[EpisodeEntry],
        pad_entries: list[EpisodeEntry],
        num_samples: int,
    ) -> None:
        self.make_pool = make_pool
        self.main = make_pool(entries)
        self.main_frames = sum(e.num_frames for e in entries)
        self.pad_entries = pad_entries
        self.pad: EpisodeShuffle | None = None
        self.num_samples = num_samples

    @property
    def draws(self) -> int:
        return self.main.draws + (self.pad.draws if self.pad is not None else 0)

    def __iter__(self) -> PaddedPool:
        return self

    def __next__(self) -> Draw:
        return self._pool_for_next_draw().__next__()

    def skip(self, num_draws: int) -> None:
        for _ in range(num_draws):
            self._pool_for_next_draw().skip(1)

    def _pool_for_next_draw(self) -> EpisodeShuffle:
        if self.draws >= self.num_samples:
            raise StopIteration
        if self.pad is None and self.main.draws < self.main_frames:
            return self.main
        if self.pad is None:
            self.pad = self.make_pool(self.pad_entries)
        return self.pad
