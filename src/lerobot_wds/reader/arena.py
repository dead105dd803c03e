"""A batch's tensors carved from one buffer, and in DataLoader workers buffers used again.

One buffer: torch sends each tensor's storage from a worker to the training process as its own file
descriptor, over a fresh authenticated Unix-socket connection. For a batch of 12 tensors that cost
15.7 ms per batch at 1 worker, against 1.8 ms for 12 views of one storage, which pickle sends once
(measured on the 2-core VM).

Used again: a fresh shared-memory buffer costs its creation (shm_open, fallocate) and a page fault
on every 4 KiB page the worker then writes: 25 of the 67 ms a worker spent on a batch of 32 uint8
240x320 samples. A worker therefore keeps :data:`RECYCLED_BUFFERS` buffers and uses one again once
the training process has dropped every tensor viewing it: unpickling a batch there registers a
finalizer on the buffer's storage (torch keeps a storage's Python object alive while any view lives),
which clears the buffer's cell on a small shared board that the worker checks.
"""

from __future__ import annotations

import math
import os
import secrets
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info

ALIGN = 64  # bytes: every tensor starts on a cache line (and SIMD-aligned)
RECYCLED_BUFFERS = 4  # per worker: DataLoader's 2 batches in flight, the one in use, one spare
# ... and at most this many bytes of them (one buffer at least): a float32 batch of 32 two-frame
# 480x640 windows is 236 MB, and four kept in each worker put peak RSS above torch's own collate,
# which frees each batch's memory once the training process drops it (scripts/bench_read.py, g1).
RECYCLED_BYTES = 256 << 20


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A tensor to allocate: ``channels_last`` lays ``(..., C, H, W)`` out as ``(..., H, W, C)``."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    channels_last: bool = False

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * torch.empty((), dtype=self.dtype).element_size()


def allocate(specs: Mapping[str, TensorSpec]) -> tuple[dict[str, torch.Tensor], Lease | None]:
    """Uninitialised CPU tensors for ``specs``, all views of one buffer: inside a DataLoader worker a
    recycled shared-memory buffer (with the :class:`Lease` that :func:`deliver` attaches to the batch),
    otherwise numpy's."""
    offsets = {}
    total = 0
    for key, spec in specs.items():
        offsets[key] = total
        total += -(-spec.nbytes // ALIGN) * ALIGN
    lease = None
    if get_worker_info() is not None:
        buffer, lease = _worker_buffers().take(total)
    else:
        buffer = _process_buffers.take(total)
    return {key: _view(buffer, offsets[key], spec) for key, spec in specs.items()}, lease


def deliver(batch: dict[str, Any], lease: Lease | None) -> dict[str, Any]:
    """The batch to yield: with a lease, a dict that, unpickled in the training process, watches its
    buffer (and is a plain dict there)."""
    return batch if lease is None else LeasedBatch(batch, lease)


def empty(
    shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, channels_last: bool = False
) -> torch.Tensor:
    """One uninitialised tensor of frames (a batch on a GPU, or a single item's frames on CPU)."""
    spec = TensorSpec(shape, dtype, channels_last)
    if device.type != "cpu":
        return _lay_out(torch.empty(_physical(spec), dtype=dtype, device=device), spec)
    return _view(_numpy_bytes(spec.nbytes), 0, spec)


def _shared_bytes(size: int) -> torch.Tensor:
    storage = torch.empty(0, dtype=torch.uint8)._typed_storage()._new_shared(max(size, 1))
    return torch.empty(0, dtype=torch.uint8).new(storage)


def _numpy_bytes(size: int) -> torch.Tensor:
    """numpy asks the kernel for transparent huge pages on large arrays: filling a fresh 59 MB float32
    batch took 9-16 ms instead of 24 ms with torch.empty (page faults; 2-core VM, THP "madvise")."""
    return torch.from_numpy(np.empty(size, dtype=np.uint8))


# ----------------------------------------------------------------------- recycled buffers


class ProcessBuffers:
    """Batch buffers of a process that builds batches itself (``num_workers=0``), used again once every
    tensor viewing one is gone: a finalizer on the buffer's storage (torch keeps a storage's Python
    object alive while any view lives) hands the memory back. Fresh memory costs a page fault per 4 KiB
    written: 15.6 ms against 9.3 ms to copy 64 480x640 frames into a used buffer (2-core VM)."""

    def __init__(self, count: int = RECYCLED_BUFFERS, max_bytes: int = RECYCLED_BYTES) -> None:
        self.count = count
        self.max_bytes = max_bytes
        self.free: list[np.ndarray] = []

    def take(self, size: int) -> torch.Tensor:
        fitting = [i for i, array in enumerate(self.free) if array.size >= size]
        array = self.free.pop(fitting[0]) if fitting else np.empty(max(size, 1), dtype=np.uint8)
        buffer = torch.from_numpy(array)
        weakref.finalize(buffer.untyped_storage(), self._give_back, array)
        return buffer[:size]

    def _give_back(self, array: np.ndarray) -> None:
        kept = sum(free.nbytes for free in self.free)
        if len(self.free) < self.count and (not self.free or kept + array.nbytes <= self.max_bytes):
            self.free.append(array)


_process_buffers = ProcessBuffers()


@dataclass(frozen=True, slots=True)
class Lease:
    """Buffer ``buffer_index`` of the worker whose board is ``token``; the board itself rides along until the
    training process has acknowledged it."""

    token: int
    buffer_index: int
    board: torch.Tensor | None


class WorkerBuffers:
    """A worker's recycled shared-memory buffers and its board: ``board[i]`` is 1 while buffer ``i``
    is out (in flight, or held by the training process); ``board[-1]`` is set once the training
    process has the board."""

    def __init__(self, count: int = RECYCLED_BUFFERS, max_bytes: int = RECYCLED_BYTES) -> None:
        self.max_bytes = max_bytes
        self.pid = os.getpid()
        self.token = secrets.randbits(62)
        self.board = torch.zeros(count + 1, dtype=torch.int32).share_memory_()
        self.buffers: list[torch.Tensor | None] = [None] * count

    def take(self, size: int) -> tuple[torch.Tensor, Lease | None]:
        """``size`` bytes of a free buffer (grown if too small), or of a fresh untracked one when all
        are out or a new one would take the buffers past ``max_bytes``."""
        board = self.board.numpy()
        free = [i for i, buffer in enumerate(self.buffers) if board[i] == 0]
        fitting = [i for i in free if (b := self.buffers[i]) is not None and b.numel() >= size]
        chosen = fitting[0] if fitting else free[0] if free else None
        if chosen is not None and not fitting:  # a buffer is made or grown: within max_bytes?
            others = sum(b.numel() for i, b in enumerate(self.buffers) if b is not None and i != chosen)
            if others and others + size > self.max_bytes:
                chosen = None
        if chosen is None:
            return _shared_bytes(size)[:size], None
        buffer = self.buffers[chosen]
        if buffer is None or buffer.numel() < size:
            buffer = self.buffers[chosen] = _shared_bytes(size)
        board[chosen] = 1
        acknowledged = bool(board[-1])
        return buffer[:size], Lease(self.token, chosen, None if acknowledged else self.board)


_worker_buffers_of_process: WorkerBuffers | None = None


def _worker_buffers() -> WorkerBuffers:
    """This worker's buffers (a forked worker must not use the ones of the process it was forked from)."""
    global _worker_buffers_of_process
    if _worker_buffers_of_process is None or _worker_buffers_of_process.pid != os.getpid():
        _worker_buffers_of_process = WorkerBuffers()
    return _worker_buffers_of_process


class LeasedBatch(dict[str, Any]):
    """A batch in a recycled buffer, on its way out of a worker. Pickling it (DataLoader's queue to the
    training process) unpickles as a plain dict whose buffer is watched by :func:`_receive`."""

    lease: Lease

    def __init__(self, batch: dict[str, Any], lease: Lease) -> None:
        super().__init__(batch)
        self.lease = lease

    def __copy__(self) -> LeasedBatch:  # DataLoader's default_convert copies mappings in the worker
        return LeasedBatch(self, self.lease)

    def __reduce__(self) -> tuple[Any, ...]:
        return _receive, (dict(self), self.lease)


# token -> board, in the training process; a board evicted here only leaves its buffers out for good
_boards: OrderedDict[int, torch.Tensor] = OrderedDict()
_MAX_BOARDS = 64


def _receive(batch: dict[str, Any], lease: Lease) -> dict[str, Any]:
    """Unpickled in the training process: free the buffer's cell once no tensor views the buffer."""
    if lease.board is not None:
        _boards[lease.token] = lease.board
        lease.board[-1] = 1
        while len(_boards) > _MAX_BOARDS:
            _boards.popitem(last=False)
    tensor = next((v for v in batch.values() if isinstance(v, torch.Tensor) and v.device.type == "cpu"), None)
    if tensor is not None:
        weakref.finalize(tensor.untyped_storage(), _release, lease.token, lease.buffer_index)
    return batch


def _release(token: int, buffer_index: int) -> None:
    board = _boards.get(token)
    if board is not None:
        board[buffer_index] = 0


def _view(buffer: torch.Tensor, offset: int, spec: TensorSpec) -> torch.Tensor:
    flat = buffer[offset : offset + spec.nbytes].view(spec.dtype)
    return _lay_out(flat.view(_physical(spec)), spec)


def _physical(spec: TensorSpec) -> tuple[int, ...]:
    if not spec.channels_last:
        return spec.shape
    *lead, channels, height, width = spec.shape
    return (*lead, height, width, channels)


def _lay_out(physical: torch.Tensor, spec: TensorSpec) -> torch.Tensor:
    if not spec.channels_last:
        return physical
    lead = len(spec.shape) - 3
    return physical.permute(*range(lead), lead + 2, lead, lead + 1)


# ----------------------------------------------------------------------- item-mode collation


def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``default_collate(items)`` with every CPU tensor of the batch a view of one buffer: pass it as
    ``DataLoader(collate_fn=collate)`` when the DataLoader batches items. In a worker the buffer is a
    recycled shared-memory one and the batch leaves as one file descriptor (``default_collate`` makes
    fresh shared memory for each tensor: one fd, a socket round trip and page faults on every page).
    A frame tensor laid out channels_last stays so. Values, shapes and dtypes equal default_collate's."""
    from torch.utils.data import default_collate

    first = items[0]
    _check_same_keys(items)
    specs = {
        key: TensorSpec((len(items), *value.shape), value.dtype, _is_channels_last(value))
        for key, value in first.items()
        if isinstance(value, torch.Tensor) and value.device.type == "cpu" and value.dtype != torch.bfloat16
    }
    tensors, lease = allocate(specs)
    batch: dict[str, Any] = {}
    for key, value in first.items():
        if key not in tensors:
            batch[key] = default_collate([item[key] for item in items])
            continue
        values = [item[key] for item in items]
        for other in values:
            if other.shape != value.shape or other.dtype != value.dtype:
                raise ValueError(
                    f"collate: {key!r} has shape {tuple(other.shape)} {other.dtype} in one item and "
                    f"{tuple(value.shape)} {value.dtype} in the first; expected equal (as default_collate)"
                )
        out = tensors[key]
        if specs[key].channels_last:  # memory order (..., H, W, C) on both sides: memcpy per frame
            np.stack([_hwc(other) for other in values], out=_hwc(out))
        else:
            np.stack([other.numpy() for other in values], out=out.numpy())
        batch[key] = out
    return deliver(batch, lease)


def _check_same_keys(items: Sequence[Mapping[str, Any]]) -> None:
    keys = items[0].keys()
    for item in items[1:]:
        if item.keys() != keys:
            extra, missing = sorted(item.keys() - keys), sorted(keys - item.keys())
            source = f" (dataset_name {item['dataset_name']!r})" if "dataset_name" in item else ""
            raise ValueError(
                f"collate: an item{source} has keys {extra} and lacks {missing} compared with the first; "
                "expected the same keys in every item (in a MixedDataset, drop or rename a key in every "
                "source that has it)"
            )


def _is_channels_last(tensor: torch.Tensor) -> bool:
    """Frames laid out (..., H, W, C) in memory behind a (..., C, H, W) shape (not plain contiguous)."""
    return tensor.ndim >= 3 and not tensor.is_contiguous() and tensor.movedim(-3, -1).is_contiguous()


def _hwc(tensor: torch.Tensor) -> np.ndarray:
    """A channels_last tensor's memory as numpy (..., H, W, C): copying it is a memcpy."""
    return tensor.movedim(-3, -1).numpy()
