"""Who reads what, in which order: pure functions of (seed, epoch, rank, worker) — no I/O, no kept RNG."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..format import EpisodeEntry


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerInfo:
    """This reader's place among all readers: built once per ``__iter__`` and passed down."""

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"WorkerInfo.rank: got {self.rank}; expected 0 <= rank < world_size={self.world_size}"
            )
        if not 0 <= self.worker < self.num_workers:
            raise ValueError(
                f"WorkerInfo.worker: got {self.worker}; expected < num_workers={self.num_workers}"
            )

    @property
    def slot(self) -> int:
        """Index of this reader among all ``world_size * num_workers`` readers."""
        return self.rank * self.num_workers + self.worker

    @property
    def num_slots(self) -> int:
        return self.world_size * self.num_workers


def distributed_rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit arguments, else an initialised ``torch.distributed``, else RANK/WORLD_SIZE, else (0, 1)."""
    if rank is not None and world_size is not None:
        return rank, world_size
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # set by torchrun and accelerate
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return 0, 1


def stream_seed(seed: int, epoch: int, slot: int = -1) -> int:
    """A seed for one epoch (and one reader slot), stable across processes and Python versions."""
    return random.Random(f"lerobot-wds:{seed}:{epoch}:{slot}").getrandbits(63)


def episode_order(episodes: Sequence[EpisodeEntry], *, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """Positions into ``episodes`` in this epoch's order (the same for every rank and worker)."""
    order = list(range(len(episodes)))
    if shuffle:
        random.Random(stream_seed(seed, epoch)).shuffle(order)
    return order


@dataclass(frozen=True, slots=True)
class EpisodePart:
    """Frames ``[frame_from, frame_to)`` of one episode: the ones a reader draws from it. An episode at
    the boundary of two readers' ranges is split between them; each still reads the whole episode (its
    windows reach the other frames)."""

    entry: EpisodeEntry
    frame_from: int
    frame_to: int

    @property
    def num_frames(self) -> int:
        return self.frame_to - self.frame_from


def whole(entry: EpisodeEntry) -> EpisodePart:
    return EpisodePart(entry, 0, entry.num_frames)


def reader_sizes(total: int, world_size: int, num_workers: int) -> list[int]:
    """How many of ``total`` frames each reader slot (``rank * num_workers + worker``) owns.

    Sizes differ by at most one. The ``total % (world_size * num_workers)`` larger ones go to worker 0 of
    every rank first, then worker 1, ...: worker ``w`` then owns the same count on (almost) every rank,
    so the padding to equal counts (:func:`reader_samples`) is below ``world_size`` samples per epoch.
    """
    base, extra = divmod(total, world_size * num_workers)
    return [base + (w * world_size + r < extra) for r in range(world_size) for w in range(num_workers)]


def reader_samples(total: int, world_size: int, worker: int, num_workers: int) -> int:
    """Samples worker ``worker`` of every rank yields: the most frames that worker owns on any rank."""
    base, extra = divmod(total, world_size * num_workers)
    return base + (worker * world_size < extra)


def frame_parts(
    order: Sequence[int], episodes: Sequence[EpisodeEntry], start: int, stop: int
) -> list[EpisodePart]:
    """Positions ``[start, stop)`` of the epoch's frame sequence (``order``'s episodes laid end to end)."""
    parts: list[EpisodePart] = []
    first = 0  # position of the current episode's frame 0 in the sequence
    for position in order:
        entry = episodes[position]
        end = first + entry.num_frames
        if end > start and first < stop:
            parts.append(EpisodePart(entry, max(start - first, 0), min(stop, end) - first))
        if end >= stop:
            break
        first = end
    return parts


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotPlan:
    """What one reader streams this epoch: its episode parts in order, and how many samples it yields.

    ``num_samples`` is the same for worker ``w`` of every rank (the most frames any rank's worker ``w``
    has), so every rank yields the same number of samples and batches: the contract that keeps DDP
    from hanging. A reader with fewer frames repeats its own first draws to make up the difference
    (``num_repeated``: at most 1), as ``DistributedSampler`` pads.
    """

    parts: list[EpisodePart]
    pad_parts: list[EpisodePart]  # where repeats come from: its own parts (all episodes, if it has none)
    num_samples: int
    num_repeated: int

    @property
    def entries(self) -> list[EpisodeEntry]:
        return [p.entry for p in self.parts]

    @property
    def num_frames(self) -> int:
        """Frames the reader owns (its draws before the repeats)."""
        return sum(p.num_frames for p in self.parts)


# The plan a reader state's positions count in (its "partition" key): contiguous, equal frame ranges of
# the epoch, one per reader (plan_slot). Pre-release readers wrote "episodes" (whole episodes per reader)
# or no key at all; those positions mean other frames, so such a state is refused, never remapped.
PARTITION = "frames"


def check_partition(state: Mapping[str, Any], where: str) -> None:
    """Raise ``ValueError`` unless the reader ``state`` counts its positions in :data:`PARTITION`."""
    if state.get("partition") == PARTITION:
        return
    what = f"partition {state['partition']!r}" if "partition" in state else "a state without a partition"
    raise ValueError(
        f"{where}reader state: {what} was written by a pre-release reader; expected partition "
        f"{PARTITION!r}; start the epoch afresh (load no state, or set_epoch to the next epoch)"
    )


def plan_slot(
    episodes: Sequence[EpisodeEntry],
    who: WorkerInfo,
    *,
    seed: int,
    epoch: int,
    shuffle: bool,
    order: Sequence[int] | None = None,
) -> SlotPlan:
    """This reader's part of the epoch (a pure function of its arguments).

    The epoch's episode order laid end to end is one sequence of frames; reader slot ``s`` owns the
    contiguous range of it that :func:`reader_sizes` gives (sizes differ by at most one). ``order`` is
    :func:`episode_order`'s result when the caller has it already.
    """
    if order is None:
        order = episode_order(episodes, seed=seed, epoch=epoch, shuffle=shuffle)
    total = sum(e.num_frames for e in episodes)
    sizes = reader_sizes(total, who.world_size, who.num_workers)
    start = sum(sizes[: who.slot])
    parts = frame_parts(order, episodes, start, start + sizes[who.slot])
    pad_parts = parts or [whole(episodes[p]) for p in order]
    num_samples = reader_samples(total, who.world_size, who.worker, who.num_workers)
    return SlotPlan(
        parts=parts, pad_parts=pad_parts, num_samples=num_samples, num_repeated=num_samples - sizes[who.slot]
    )
