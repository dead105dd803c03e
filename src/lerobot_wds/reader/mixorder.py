"""A mixture's order: which source yields each of a reader's samples. Pure: no I/O, no kept RNG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from .order import stream_seed

# A source's lap L of epoch E streams as the source's epoch E + L * LAP_STRIDE: lap 0 is the plain
# epoch (a one-lap source yields exactly what it yields alone), later laps are fresh shuffles that no
# other (epoch, lap) pair reaches for epochs below 2**32.
LAP_STRIDE = 1 << 32


def apportion(weights: Sequence[Fraction], total: int) -> list[int]:
    """``total`` split in proportion to ``weights`` by largest remainder (Hamilton): each count is
    ``floor`` or ``ceil`` of ``total * weight / sum(weights)``; ties go to the lower index. Exact
    (rational arithmetic), so every machine gets the same counts."""
    weight_sum = sum(weights, Fraction(0))
    quotas = [weight * total / weight_sum for weight in weights]
    counts = [math.floor(quota) for quota in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda i: (counts[i] - quotas[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def mixture_seed(seed: int, epoch: int, slot: int) -> int:
    """The pick order's seed for one reader and epoch (distinct from the sources' own stream seeds)."""
    return stream_seed(seed, epoch, slot) ^ 0x6D69787475726521  # "mixture!": another stream than theirs


def pick_order(counts: Sequence[int], *, seed: int, epoch: int, slot: int) -> np.ndarray:
    """Source index of each of a reader's samples: ``counts[i]`` times ``i``, in a seeded shuffle.

    One byte per sample (two past 127 sources): a reader's whole epoch of picks is held, not drawn on
    the fly, so a restore is an index into it. NumPy's ``Generator.shuffle`` on PCG64 (same numbers on
    every platform; NumPy keeps the right to change Generator streams across versions: the state's
    fingerprint does not cover that, a restore across a NumPy upgrade could differ)."""
    dtype = np.int8 if len(counts) <= np.iinfo(np.int8).max else np.int16
    picks = np.repeat(np.arange(len(counts), dtype=dtype), counts)
    np.random.Generator(np.random.PCG64(mixture_seed(seed, epoch, slot))).shuffle(picks)
    return picks


def first_overflow(picks: np.ndarray, capacities: Sequence[int]) -> int:
    """The position of the first pick of a source that already gave all of its ``capacities`` samples
    (``len(picks)`` if none runs out): where ``on_exhausted="stop"`` ends the epoch."""
    stop = len(picks)
    for source, capacity in enumerate(capacities):
        positions = np.flatnonzero(picks == source)
        if len(positions) > capacity:
            stop = min(stop, int(positions[capacity]))
    return stop


def lap_epoch(epoch: int, lap: int) -> int:
    """The epoch a source streams on its ``lap``-th pass within the mixture's ``epoch``."""
    return epoch + lap * LAP_STRIDE
