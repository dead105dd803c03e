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

from .order import WorkerInfo, reader_samples, reader_sizes
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


def merge_intervals(intervals: Sequence[Interval]) -> list[Interval]:
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
    return merge_intervals(
        [i for left in left_per_slot(intervals, world_size, num_workers, draws) for i in left]
    )


def left_per_slot(
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
    if not pieces:
        return None
    first = pieces[0].position
    return next((fill for start, stop, fill in resume.fills if start <= first < stop), None)


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
