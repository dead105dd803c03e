"""The epoch a dataset (or a mixture) is in, shared with its running DataLoader workers."""

from __future__ import annotations

import torch


class SharedEpoch:
    """``epoch`` and ``set_epoch`` for an IterableDataset, the value held in shared memory: DataLoader
    workers (persistent ones too) hold a copy of the dataset made when they started, and must still see
    ``set_epoch()`` calls made afterwards in the training process. Call :meth:`_share_epoch` in
    ``__init__`` (in the training process, before any worker starts)."""

    _epoch: torch.Tensor

    def _share_epoch(self) -> None:
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    @epoch.setter
    def epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle: the order is a pure function of (seed, epoch, rank, worker).

        Takes effect at the next ``iter(loader)``, in running DataLoader workers too
        (``persistent_workers=True``): the epoch lives in shared memory.
        """
        self.epoch = epoch
