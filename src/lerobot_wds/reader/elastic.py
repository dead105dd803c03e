"""Elastic resume: the rest of an epoch saved by W x N readers, re-planned for W' x N' readers.

Positions. An epoch's *sequence* is the own draws (no repeats) of every reader of the run that planned it
(its *base*: ``world_size`` x ``num_workers`` readers) laid end to end in slot order: position ``p`` is
draw ``p - start(s)`` of base reader ``s``, where ``start(s)`` sums the :func:`~.order.reader_sizes` before
``s``. The sequence holds every frame of the epoch exactly once.

A saved run's readers each consumed a prefix of their range; :func:`elastic_state` turns their states
into the positions not yet consumed (a list of intervals: at most one per reader saved). A reader of the
new run takes an equal contiguous slice of those positions (:func:`reader_pieces`) and replays only the
base schedules its slice overlaps (:class:`ResumedSchedule`; a schedule is pure), so the order within
each base reader, and with it decode locality, is kept. The next epochs are planned afresh.

Bad episodes (``on_error="skip"``). A saved reader's ``skip_failed`` names the episodes it had found bad
and not finished; their draws among that reader's remaining positions are *known bad* (``Resume.failed``:
``[start, stop, episode_index]`` triples) and the new readers hand them out as failed without reading
them again, as the saved reader would have. The rest of a bad episode (draws of another saved reader,
or of a reader that had not yet reached its bad frame) is found bad again, or not, by the new readers.
A bad draw is replaced by a repeat of its reader's last good one; a new reader whose share starts with
bad draws repeats the last good draw of the saved reader whose remaining positions its share starts in
(``Resume.fills``: ``[start, stop, position]``), as that reader would have, so a share of bad draws
only still yields items.
"""

from __future__ import annotations

import bisect
import copy
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .order import WorkerInfo, check_partition, reader_samples, reader_sizes
from .schedule import Draw, DrawSchedule

Interval = tuple[int, int]  # positions [start, stop) of the epoch's sequence
KnownBad = tuple[int, int, int]  # positions [start, stop) whose draws of episode (the third) are bad
Fill = tuple[int, int, int]  # a saved reader's remaining positions [start, stop) and its last good one


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume:
    """The rest of an epoch: positions ``remaining`` of the sequence planned by ``world_size`` x
    ``num_workers`` readers over ``num_frames`` frames; ``failed``: the known-bad draws among them;
    ``fills``: the last good draw of each saved reader (``on_error="skip"``)."""

    world_size: int
    num_workers: int
    num_frames: int
    remaining: tuple[Interval, ...]
    failed: tuple[KnownBad, ...] = ()
    fills: tuple[Fill, ...] = ()

    @property
    def num_positions(self) -> int:
        return sum(stop - start for start, stop in self.remaining)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "world_size": self.world_size,
            "num_workers": self.num_workers,
            "num_frames": self.num_frames,
            "remaining": [list(i) for i in self.remaining],
        }
        if self.failed:  # only with on_error="skip": other states keep their shape
            out["failed"] = [list(f) for f in self.failed]
        if self.fills:
            out["fills"] = [list(f) for f in self.fills]
        return out

    @classmethod
    def from_json(cls, state: Mapping[str, Any]) -> Resume:
        return cls(
            world_size=int(state["world_size"]),
            num_workers=int(state["num_workers"]),
            num_frames=int(state["num_frames"]),
            remaining=tuple((int(a), int(b)) for a, b in state["remaining"]),
            failed=tuple((int(a), int(b), int(e)) for a, b, e in state.get("failed", ())),
            fills=tuple((int(a), int(b), int(p)) for a, b, p in state.get("fills", ())),
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
    return _merge([i for left in _left_per_slot(intervals, world_size, num_workers, draws) for i in left])


def _left_per_slot(
    intervals: Sequence[Interval], world_size: int, num_workers: int, draws: Mapping[int, int]
) -> list[list[Interval]]:
    """Each reader slot's positions not yet consumed (see :func:`remaining_positions`)."""
    total = sum(b - a for a, b in intervals)
    left: list[list[Interval]] = []
    start = 0
    for slot, size in enumerate(reader_sizes(total, world_size, num_workers)):
        left.append(slice_intervals(intervals, start + min(draws[slot], size), start + size))
        start += size
    return left


def known_bad(
    left: Sequence[Sequence[Interval]], failed: Mapping[int, Sequence[int]], earlier: Sequence[KnownBad]
) -> list[KnownBad]:
    """The known-bad draws of the rest: each reader slot's ``failed`` episodes over its ``left``
    positions, and those ``earlier`` known (an earlier elastic restore) clipped to what is left."""
    out = {(a, b, e) for slot, episodes in failed.items() for a, b in left[slot] for e in episodes}
    for a, b, episode_index in earlier:
        for c, d in (i for intervals in left for i in intervals):
            if max(a, c) < min(b, d):
                out.add((max(a, c), min(b, d), episode_index))
    return sorted(out)


@dataclass(frozen=True, slots=True)
class Piece:
    """Draws ``[draw_from, draw_to)`` of base reader ``slot``'s schedule, at ``position`` of the epoch's
    sequence."""

    slot: int
    draw_from: int
    draw_to: int
    position: int


def _pieces(resume: Resume, intervals: Sequence[Interval]) -> list[Piece]:
    """Positions as pieces of base readers' schedules (split where a base reader's range ends)."""
    sizes = reader_sizes(resume.num_frames, resume.world_size, resume.num_workers)
    starts = list(itertools.accumulate(sizes, initial=0))
    pieces: list[Piece] = []
    for a, b in intervals:
        while a < b:
            slot = bisect.bisect_right(starts, a) - 1
            stop = min(b, starts[slot + 1])
            pieces.append(Piece(slot, a - starts[slot], stop - starts[slot], a))
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


def draw_position(resume: Resume, who: WorkerInfo, draw: int) -> int:
    """The sequence position of reader ``who``'s ``draw``-th draw in ``resume``'s epoch."""
    pieces, _ = reader_pieces(resume, who)
    for piece in pieces:
        length = piece.draw_to - piece.draw_from
        if draw < length:
            return piece.position + draw
        draw -= length
    raise ValueError(f"elastic: {who} has no draw {draw} in the resumed epoch; expected fewer")


def base_position(resume: Resume, position: int) -> Piece:
    """Which base reader's schedule, and which draw of it, holds sequence ``position``."""
    return _pieces(resume, [(position, position + 1)])[0]


def fallback_fill(resume: Resume, who: WorkerInfo) -> int | None:
    """The sequence position reader ``who`` repeats for bad draws before its first good one: the last
    good draw of the saved reader whose remaining positions its share starts in (None: no such draw)."""
    pieces, _ = reader_pieces(resume, who)
    first = pieces[0].position if pieces else None
    return next((fill for start, stop, fill in resume.fills if first is not None and start <= first < stop),
                None)  # fmt: skip


class ResumedSchedule(Iterator[Draw]):
    """A reader's draws in a resumed epoch: the base schedules' draws of its pieces, in order.

    Admissions are renumbered per piece (two pieces may hold the same episode), and the last draw of an
    admission within its piece is marked ``last`` (a piece may end before the base schedule's last draw of
    that episode); a draw at a position of ``failed`` for its episode is marked ``known_bad``. State:
    :attr:`draws`, as :class:`~.schedule.DrawSchedule`.
    """

    def __init__(
        self,
        pieces: list[Piece],
        num_samples: int,
        make_schedule: Callable[[int], DrawSchedule],
        failed: Sequence[KnownBad] = (),
    ) -> None:
        self.pieces = pieces
        self.num_samples = num_samples
        self.make_schedule = make_schedule
        self.failed = failed
        self._piece_failed: list[KnownBad] = []  # those of failed that overlap the current piece
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
        position = self.pieces[self._piece].position + self._offset
        bad = any(a <= position < b and e == draw.entry.episode_index for a, b, e in self._piece_failed)
        self._offset += 1
        self.draws += 1
        return Draw(admission, draw.entry, draw.frame_index, last, known_bad=bad)

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
        end = piece.position + piece.draw_to - piece.draw_from
        self._piece_failed = [f for f in self.failed if f[0] < end and f[1] > piece.position]
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
    check_partition(first, where="elastic_state: ")
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
    left = _left_per_slot(resume.remaining, world_size, num_workers, draws)
    failed = known_bad(left, _failed_per_slot(readers, num_workers), resume.failed)
    return {
        **{k: first[k] for k in ("format_version", "fingerprint", "epoch", "partition", "num_frames")},
        "elastic": Resume(world_size=resume.world_size, num_workers=resume.num_workers,
                          num_frames=resume.num_frames, remaining=tuple(_merge([i for s in left for i in s])),
                          failed=tuple(failed), fills=tuple(_fills(readers, resume, left))).to_json(),
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


def _fills(
    readers: Sequence[Mapping[str, Any]], resume: Resume, left: Sequence[Sequence[Interval]]
) -> list[Fill]:
    """Each saved reader's remaining positions and its last good draw (``skip_fill``; while it had
    none, its own fallback), as a sequence position."""
    fills: list[Fill] = []
    for reader in readers:
        who = WorkerInfo(**{k: int(reader[k]) for k in ("rank", "world_size", "worker", "num_workers")})
        fill = int(reader.get("skip_fill", -1))
        position = draw_position(resume, who, fill) if fill >= 0 else fallback_fill(resume, who)
        if position is not None and left[who.slot]:
            fills.append((left[who.slot][0][0], left[who.slot][-1][1], position))
    return sorted(fills)


def _failed_per_slot(readers: Sequence[Mapping[str, Any]], num_workers: int) -> dict[int, list[int]]:
    """The episodes each saved reader had found bad and not finished (``on_error="skip"``)."""
    return {
        int(reader["rank"]) * num_workers + int(reader["worker"]): [int(e) for e in reader["skip_failed"]]
        for reader in readers
        if reader.get("skip_failed")
    }


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
