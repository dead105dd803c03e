"""Counters of a reader's work, and the shared board that carries each worker's to the training process."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields

import torch

# DataLoader workers whose counters reach the training process (worker ids below this)
MAX_READERS = 256


@dataclass(slots=True)
class Counters:
    """What one reader process did this iteration. Stages add to it (read-ahead threads too)."""

    fetch_s: float = 0.0  # reading and parsing episodes, summed over read-ahead threads
    decode_s: float = 0.0  # decoding frames and building items
    episodes: int = 0  # episodes fetched
    items: int = 0  # items built (a batch counts its items)
    requests: int = 0  # ranged reads
    fetch_waits: int = 0  # episodes the reader waited for (every episode without read-ahead)
    skipped_episodes: int = 0  # bad episodes skipped (on_error="skip")
    skipped_draws: int = 0  # their draws, each replaced by a repeat of a good item
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def values(self) -> list[float]:
        return [float(getattr(self, f.name)) for f in fields(self) if not f.name.startswith("_")]


FIELDS = tuple(f.name for f in fields(Counters) if not f.name.startswith("_"))


class CounterBoard:
    """One row of counters per reader process, in shared memory: DataLoader workers write theirs, the
    training process sums them (:meth:`totals`). Made in the training process before workers start."""

    def __init__(self) -> None:
        self._rows = torch.zeros((MAX_READERS, len(FIELDS)), dtype=torch.float64).share_memory_()

    def publish(self, worker: int, counters: Counters) -> None:
        if worker < MAX_READERS:
            self._rows[worker].copy_(torch.tensor(counters.values(), dtype=torch.float64))

    def totals(self) -> dict[str, float]:
        sums = self._rows.sum(dim=0).tolist()
        pairs = zip(FIELDS, sums, strict=True)
        return {name: (value if name.endswith("_s") else int(value)) for name, value in pairs}
