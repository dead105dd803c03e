"""Elastic resume: the rest of an epoch saved by W x N readers, re-planned for W' x N' readers.

Positions. An epoch's *sequence* is the own draws (no repeats) of every reader of the run that planned it
(its *base*: ``world_size`` x ``num_workers`` readers) laid end to end in slot order: position ``p`` is
draw ``p - start(s)`` of base reader ``s``, where ``start(s)`` sums the :func:`~.order.reader_sizes` before
``s``. With the frame split, the sequence holds every frame of the epoch exactly once.

A saved run's readers each consumed a prefix of their range; :func:`elastic_state` turns their states
into the positions not yet consumed (a list of intervals: at most one per reader saved). A reader of the
new run takes an equal contiguous slice of those positions (:func:`reader_pieces`) and replays only the
base schedules its slice overlaps (:class:`ResumedSchedule`; a schedule is pure), so the order within
each base reader, and with it decode locality, is kept. The next epochs are planned afresh.
"""

from __future__ import annotations

import bisect
import copy
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .order import WorkerInfo, reader_samples, reader_sizes
from .schedule import Draw, DrawSchedule

Interval = tuple[int, int]  # positions [start, stop) of the epoch's sequence


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume:
    """The rest of an epoch: positions ``remaining`` of the sequence planned by ``world_size`` x
    ``num_workers`` readers over ``num_frames`` frames."""

    world_size: int
    num_workers: int
    num_frames: int
    remaining: tuple[Interval, ...]

    @property
    def num_positions(self) -> int:
        return sum(stop - start for start, stop in self.remaining)

    def to_json(self) -> dict[str, Any]:
        return {
            "world_size": self.world_size,
            "num_workers": self.num_workers,
            "num_frames": self.num_frames,
            "remaining": [list(i) for i in self.remaining],
        }

    @classmethod
    def from_json(cls, state: Mapping[str, Any]) -> Resume:
        return cls(
            world_size=int(state["world_size"]),
            num_workers=int(state["num_workers"]),
            num_frames=int(state["num_frames"]),
            remaining=tuple((int(a), int(b)) for a, b in state["remaining"]),
        )


def slice_intervals(intervals: Sequence[Interval], start: int, stop: int) -> list[Interval]:
    """Positions ``[start, stop)`` of ``intervals`` laid end to end, as intervals."""
    out: list[Interval] = []
    offset = 0
    for a, b in intervals:
        lo, hi = max(a, a + start - offset), min(b, a + stop - offset)
        if lo < hi:
            out.append((lo, hi))
        offset += b - a
        if offset >= stop:
            break
    return out


def _merge(intervals: Sequence[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a, b in intervals:
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        elif a < b:
            out.append((a, b))
    return out


def remaining_positions(
    intervals: Sequence[Interval], world_size: int, num_workers: int, draws: Mapping[int, int]
) -> list[Interval]:
    """What is left of ``intervals`` after reader slot ``s`` of a ``world_size`` x ``num_workers`` run
    over them consumed its first ``draws[s]`` positions (draws past its range are repeats)."""
    total = sum(b - a for a, b in intervals)
    left: list[Interval] = []
    start = 0
    for slot, size in enumerate(reader_sizes(total, world_size, num_workers)):
        left += slice_intervals(intervals, start + min(draws[slot], size), start + size)
        start += size
    return _merge(left)


@dataclass(frozen=True, slots=True)
class Piece:
    """Draws ``[draw_from, draw_to)`` of base reader ``slot``'s schedule."""

    slot: int
    draw_from: int
    draw_to: int


def _pieces(resume: Resume, intervals: Sequence[Interval]) -> list[Piece]:
    """Positions as pieces of base readers' schedules (split where a base reader's range ends)."""
    sizes = reader_sizes(resume.num_frames, resume.world_size, resume.num_workers)
    starts = list(itertools.accumulate(sizes, initial=0))
    pieces: list[Piece] = []
    for a, b in intervals:
        while a < b:
            slot = bisect.bisect_right(starts, a) - 1
            stop = min(b, starts[slot + 1])
            pieces.append(Piece(slot, a - starts[slot], stop - starts[slot]))
            a = stop
    return pieces


def reader_pieces(resume: Resume, who: WorkerInfo) -> tuple[list[Piece], int]:
    """Reader ``who``'s slice of the remaining positions, then its repeats, and its number of samples.

    Slices differ by at most one position; worker ``w`` of every rank yields the same number of samples
    (at most one repeat per reader, of its own first position, or of the first remaining one).
    """
    total = resume.num_positions
    sizes = reader_sizes(total, who.world_size, who.num_workers)
    start = sum(sizes[: who.slot])
    own = slice_intervals(resume.remaining, start, start + sizes[who.slot])
    num_samples = reader_samples(total, who.world_size, who.worker, who.num_workers)
    repeats = num_samples - sizes[who.slot]
    pad = slice_intervals(own or list(resume.remaining), 0, repeats) if repeats else []
    return _pieces(resume, own) + _pieces(resume, pad), num_samples


class ResumedSchedule(Iterator[Draw]):
    """A reader's draws in a resumed epoch: the base schedules' draws of its pieces, in order.

    Admissions are renumbered per piece (two pieces may hold the same episode), and the last draw of an
    admission within its piece is marked ``last`` (a piece may end before the base schedule's last draw of
    that episode). State: :attr:`draws`, as :class:`~.schedule.DrawSchedule`.
    """

    def __init__(
        self, pieces: list[Piece], num_samples: int, make_schedule: Callable[[int], DrawSchedule]
    ) -> None:
        self.pieces = pieces
        self.num_samples = num_samples
        self.make_schedule = make_schedule
        self.draws = 0
        self._piece = -1
        self._schedule: DrawSchedule | None = None
        self._offset = 0  # draws taken from the current piece
        self._last: dict[int, int] = {}  # admission -> offset of its last draw in the current piece
        self._admissions: dict[tuple[int, int], int] = {}  # (piece, base admission) -> admission

    def __next__(self) -> Draw:
        if self.draws >= self.num_samples:
            raise StopIteration
        schedule = self._schedule
        while schedule is None or self._offset == self._length():
            schedule = self._open(self._piece + 1)
        draw = next(schedule)
        admission = self._admissions.setdefault((self._piece, draw.admission), len(self._admissions))
        last = self._last[draw.admission] == self._offset
        self._offset += 1
        self.draws += 1
        return Draw(admission, draw.entry, draw.frame_index, last)

    def _length(self) -> int:
        piece = self.pieces[self._piece]
        return piece.draw_to - piece.draw_from

    def _open(self, index: int) -> DrawSchedule:
        if index >= len(self.pieces):
            raise StopIteration  # fewer draws than num_samples: not reached for pieces from reader_pieces
        piece = self.pieces[index]
        schedule = self.make_schedule(piece.slot)
        schedule.skip(piece.draw_from)
        # A first pass, on a copy, finds each admission's last draw in the piece. The copy shares the
        # plan (read-only); it copies the pool (at most pool_size episodes) and the RNG.
        plan = schedule.plan
        scan = copy.deepcopy(
            schedule, {id(plan): plan, id(plan.parts): plan.parts, id(plan.pad_parts): plan.pad_parts}
        )
        self._last = {}
        for offset in range(piece.draw_to - piece.draw_from):
            self._last[next(scan).admission] = offset
        self._schedule = schedule
        self._piece, self._offset = index, 0
        return schedule

    def skip(self, num_draws: int) -> None:
        """Advance by ``num_draws`` draws (a restore)."""
        for _ in range(num_draws):
            next(self)


# Keys every reader state of one run shares (the envelope and the plan they refer to).
_SHARED_KEYS = (
    "format_version",
    "fingerprint",
    "epoch",
    "world_size",
    "num_workers",
    "partition",
    "num_frames",
)


def elastic_state(states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The rest of a saved epoch, for a dataset with any number of ranks and workers to load.

    ``states``: the saved states of a run, each a ``StatefulDataLoader.state_dict()`` (one per rank; with
    workers, it holds each worker's dataset state as of the last batch handed out, so batches prefetched
    but never handed out are not lost), or a ``ShardedLeRobotDataset.state_dict()``. Ranks whose states are
    missing are taken to have consumed what the given ranks did, worker for worker: under DDP every rank
    has consumed the same number of batches, and worker ``w`` yields the same count on every rank. Pass
    every rank's state when that does not hold.

    Load the result with ``ShardedLeRobotDataset.load_state_dict`` (not the loader's): the remaining frames
    of the epoch are then split equally among the new run's readers, each exactly once, and the next epochs
    are planned afresh. Its size is bounded by the readers saved: one ``[start, stop)`` interval per reader
    (summed over the runs, if an epoch is resumed elastically more than once).
    """
    readers = [reader for state in states for reader in _reader_states(state)]
    if not readers:
        raise ValueError("elastic_state: got no reader state; expected the saved states of a run")
    first = readers[0]
    if "partition" not in first:
        raise ValueError(
            "elastic_state: the states were saved before elastic resume (they have no 'partition'); "
            "resume them with the same number of ranks and workers, or from the next epoch"
        )
    for reader in readers:
        differ = [k for k in (*_SHARED_KEYS, "resumed") if reader.get(k) != first.get(k)]
        if differ:
            raise ValueError(
                f"elastic_state: the states are not of one run and epoch; they differ in {differ}: "
                f"got {[reader.get(k) for k in differ]}, expected {[first.get(k) for k in differ]}"
            )
    world_size, num_workers = int(first["world_size"]), int(first["num_workers"])
    draws = _draws_per_slot(readers, world_size, num_workers)
    if "resumed" in first:
        resume = Resume.from_json(first["resumed"])
    else:
        num_frames = int(first["num_frames"])
        resume = Resume(world_size=world_size, num_workers=num_workers, num_frames=num_frames,
                        remaining=((0, num_frames),) if num_frames else ())  # fmt: skip
    left = remaining_positions(resume.remaining, world_size, num_workers, draws)
    return {
        **{k: first[k] for k in ("format_version", "fingerprint", "epoch", "partition", "num_frames")},
        "elastic": Resume(world_size=resume.world_size, num_workers=resume.num_workers,
                          num_frames=resume.num_frames, remaining=tuple(left)).to_json(),
    }  # fmt: skip


def _reader_states(state: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The dataset states in a loader state (or the state itself, if it is one)."""
    if "draws" in state:
        return [state]
    if "_snapshot" in state:  # StatefulDataLoader with workers
        if state.get("_steps_since_snapshot", 0):
            raise ValueError(
                "elastic_state: the loader state was taken "
                f"{state['_steps_since_snapshot']} batches after its last snapshot; expected 0: save with "
                "StatefulDataLoader(snapshot_every_n_steps=1), the default"
            )
        workers = state["_snapshot"]["_worker_snapshots"].values()
        return [w["dataset_state"] for w in workers if w.get("dataset_state") is not None]
    if "dataset_state" in state:  # StatefulDataLoader without workers
        return [state["dataset_state"]] if state["dataset_state"] is not None else []
    raise ValueError(
        f"elastic_state: got a state with keys {sorted(state)[:8]}; expected a StatefulDataLoader or "
        "ShardedLeRobotDataset state"
    )


def _draws_per_slot(
    readers: Sequence[Mapping[str, Any]], world_size: int, num_workers: int
) -> dict[int, int]:
    by_reader: dict[tuple[int, int], int] = {}
    for reader in readers:
        key, draws = (int(reader["rank"]), int(reader["worker"])), int(reader["draws"])
        if by_reader.setdefault(key, draws) != draws:
            raise ValueError(f"elastic_state: rank {key[0]} worker {key[1]} appears twice, with other draws")
    slots: dict[int, int] = {}
    for worker in range(num_workers):
        given = {by_reader[r, worker] for r in range(world_size) if (r, worker) in by_reader}
        if not given:
            raise ValueError(f"elastic_state: no state of worker {worker}; expected one of each worker")
        for rank in range(world_size):
            if (rank, worker) in by_reader:
                slots[rank * num_workers + worker] = by_reader[rank, worker]
            elif len(given) == 1:  # DDP lockstep: the missing rank consumed what the given ones did
                slots[rank * num_workers + worker] = next(iter(given))
            else:
                raise ValueError(
                    f"elastic_state: no state of rank {rank}, and the given ranks' worker {worker} consumed "
                    f"different draws {sorted(given)}; expected every rank's state"
                )
    return slots
