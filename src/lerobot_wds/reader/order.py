"""Who reads what, in which order: pure functions of (seed, epoch, rank, worker) — no I/O, no kept RNG."""

from __future__ import annotations

import heapq
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass

from .. import storage
from ..format import EpisodeEntry, Manifest


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


def split_by_frames(order: Sequence[int], num_frames: Sequence[int], num_parts: int) -> list[list[int]]:
    """Deal episodes (in ``order``) to ``num_parts`` readers, balancing frame counts.

    Each episode goes to the part with the fewest frames so far (ties: the lowest part), so parts
    differ by at most one episode's length and every episode lands in exactly one part.
    """
    parts: list[list[int]] = [[] for _ in range(num_parts)]
    loads = [(0, part) for part in range(num_parts)]  # a heap of (frames so far, part)
    for position in order:
        load, part = heapq.heappop(loads)
        parts[part].append(position)
        heapq.heappush(loads, (load + num_frames[position], part))
    return parts


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotPlan:
    """What one reader streams this epoch: its episodes in order, and how many samples it yields.

    ``num_samples`` is the same for worker ``w`` of every rank (the most frames any rank's worker ``w``
    has), so every rank yields the same number of samples and batches: the contract that keeps DDP
    from hanging. A reader with fewer frames repeats its own first draws to make up the difference
    (``num_repeated``), as ``DistributedSampler`` pads by default. With one rank nothing is repeated.
    """

    entries: list[EpisodeEntry]
    pad_entries: list[EpisodeEntry]  # where repeats come from: its own episodes (all, if it has none)
    num_samples: int
    num_repeated: int


def plan_slot(
    episodes: Sequence[EpisodeEntry], who: WorkerInfo, *, seed: int, epoch: int, shuffle: bool
) -> SlotPlan:
    """This reader's part of the epoch (a pure function of its arguments)."""
    order = episode_order(episodes, seed=seed, epoch=epoch, shuffle=shuffle)
    parts = split_by_frames(order, [e.num_frames for e in episodes], who.num_slots)
    loads = [sum(episodes[p].num_frames for p in part) for part in parts]
    own = loads[who.slot]
    entries = [episodes[p] for p in parts[who.slot]]
    pad_entries = entries or [episodes[p] for p in order]
    if who.world_size == 1:
        return SlotPlan(entries=entries, pad_entries=pad_entries, num_samples=own, num_repeated=0)
    num_samples = max(loads[rank * who.num_workers + who.worker] for rank in range(who.world_size))
    return SlotPlan(
        entries=entries, pad_entries=pad_entries, num_samples=num_samples, num_repeated=num_samples - own
    )


def select_episodes(manifest: Manifest, episodes: Sequence[int] | None, url: str) -> list[EpisodeEntry]:
    """The manifest's entries of ``episodes`` (all if None), in episode order; unknown ones refused."""
    if episodes is None:
        return list(manifest.episodes)
    by_index = {e.episode_index: e for e in manifest.episodes}
    missing = sorted(set(episodes) - set(by_index))
    if missing:
        raise ValueError(
            f"{storage.redact(url)}: episodes {missing[:10]} are not in the manifest; it has {len(by_index)}"
        )
    return [by_index[i] for i in sorted(set(episodes))]
