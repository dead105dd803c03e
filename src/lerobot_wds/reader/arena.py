"""Tensors of one batch carved from one buffer, so that a batch leaves a DataLoader worker in one piece.

torch sends each tensor's storage from a worker to the training process as its own file descriptor,
passed over a fresh authenticated Unix-socket connection: for a batch of 12 tensors that cost 15.7 ms
per batch at 1 worker, against 1.8 ms for 12 views of one storage, which pickle sends once (session 3,
2-core VM; 25% of a worker's time at 600 samples/s). :func:`allocate` hands out such views.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import get_worker_info

ALIGN = 64  # bytes: every tensor starts on a cache line (and SIMD-aligned)


@dataclass(frozen=True, slots=True)
class Slot:
    """A tensor to allocate: ``channels_last`` lays ``(..., C, H, W)`` out as ``(..., H, W, C)``."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    channels_last: bool = False

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * torch.empty((), dtype=self.dtype).element_size()


def allocate(slots: Mapping[str, Slot]) -> dict[str, torch.Tensor]:
    """Uninitialised CPU tensors for ``slots``, all views of one buffer: in shared memory inside a
    DataLoader worker (as ``default_collate`` allocates), otherwise from numpy."""
    offsets = {}
    total = 0
    for key, slot in slots.items():
        offsets[key] = total
        total += -(-slot.nbytes // ALIGN) * ALIGN
    buffer = empty_bytes(total)
    return {key: _view(buffer, offsets[key], slot) for key, slot in slots.items()}


def empty(
    shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, channels_last: bool = False
) -> torch.Tensor:
    """One uninitialised tensor of frames (a batch on a GPU, or a single item's frames on CPU)."""
    slot = Slot(shape, dtype, channels_last)
    if device.type != "cpu":
        return _lay_out(torch.empty(_physical(slot), dtype=dtype, device=device), slot)
    return _view(_numpy_bytes(slot.nbytes), 0, slot)


def empty_bytes(size: int) -> torch.Tensor:
    """``size`` uninitialised bytes: shared memory inside a DataLoader worker, so handing them to the
    training process copies nothing; otherwise numpy's, which asks the kernel for transparent huge pages
    on large arrays (filling a fresh 59 MB float32 batch took 9-16 ms instead of 24 ms with torch.empty:
    page faults; 2-core VM, THP "madvise")."""
    if get_worker_info() is not None:
        storage = torch.empty(0, dtype=torch.uint8)._typed_storage()._new_shared(max(size, 1))
        return torch.empty(0, dtype=torch.uint8).new(storage)[:size]
    return _numpy_bytes(size)


def _numpy_bytes(size: int) -> torch.Tensor:
    return torch.from_numpy(np.empty(size, dtype=np.uint8))


def _view(buffer: torch.Tensor, offset: int, slot: Slot) -> torch.Tensor:
    flat = buffer[offset : offset + slot.nbytes].view(slot.dtype)
    return _lay_out(flat.view(_physical(slot)), slot)


def _physical(slot: Slot) -> tuple[int, ...]:
    if not slot.channels_last:
        return slot.shape
    *lead, channels, height, width = slot.shape
    return (*lead, height, width, channels)


def _lay_out(physical: torch.Tensor, slot: Slot) -> torch.Tensor:
    if not slot.channels_last:
        return physical
    lead = len(slot.shape) - 3
    return physical.permute(*range(lead), lead + 2, lead, lead + 1)
