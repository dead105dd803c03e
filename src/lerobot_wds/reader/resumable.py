"""What a dataset and a mixture share at the torch boundary: the epoch in shared memory, the state
envelope (format version, fingerprint, epoch, reader identity) and its checks, and option checks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, get_args

import torch

from .. import format as fmt
from .order import WorkerInfo


def check_choice(name: str, value: object, choices: Any, where: str = "") -> None:
    """Raise ``ValueError`` unless ``value`` is one of the ``Literal`` type ``choices``."""
    if value not in get_args(choices):
        expected = ", ".join(map(repr, get_args(choices)))
        raise ValueError(f"{where}{name}: got {value!r}; expected one of {expected}")


def fingerprint_of(identity: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-able ``identity`` (what a saved state must match to be restored)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


class Resumable:
    """``epoch``/``set_epoch`` with the value in shared memory, and the state envelope.

    DataLoader workers (persistent ones too) hold a copy of the dataset made when they started, and must
    still see ``set_epoch()`` calls made afterwards in the training process: call :meth:`_share_epoch` in
    ``__init__`` (in the training process, before any worker starts).

    A subclass gives :meth:`_identity` (what its order depends on), ``_where`` (the name its messages
    start with) and ``_what_changed`` (the options a fingerprint mismatch names).
    """

    _epoch: torch.Tensor
    _restore: dict[str, Any] | None
    _fingerprint: str | None = None
    _where: str
    _what_changed: str

    def _share_epoch(self) -> None:
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._restore = None  # a loaded state, applied by the next __iter__

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

    def _identity(self) -> dict[str, Any]:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A hash of the data's identity and of every option that changes the order of items."""
        if self._fingerprint is None:  # once: state_dict() reads it after every batch
            self._fingerprint = fingerprint_of(self._identity())
        return self._fingerprint

    def _envelope(self, epoch: int, who: WorkerInfo) -> dict[str, Any]:
        """The keys every saved state starts with."""
        return {
            "format_version": fmt.FORMAT_VERSION,
            "fingerprint": self.fingerprint(),
            "epoch": epoch,
            **asdict(who),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume where ``state_dict`` was taken: the next ``iter`` yields what would have come next.
        Refuses a state of another format version, other data or other order options."""
        if state.get("format_version") != fmt.FORMAT_VERSION:
            raise ValueError(
                f"{self._where}: reader state has format_version {state.get('format_version')!r}; "
                f"expected {fmt.FORMAT_VERSION}"
            )
        if state.get("fingerprint") != self.fingerprint():
            raise ValueError(
                f"{self._where}: reader state was saved for {self._what_changed}; got fingerprint "
                f"{state.get('fingerprint')!r}, expected {self.fingerprint()!r}"
            )
        self.epoch = int(state["epoch"])
        self._restore = dict(state)

    def _take_restore(self) -> dict[str, Any] | None:
        """The loaded state, once, if it is of the current epoch (a new epoch starts from its start)."""
        state, self._restore = self._restore, None
        if state is None or int(state["epoch"]) != self.epoch:
            return None
        return state

    def _check_saved_by(self, state: Mapping[str, Any], who: WorkerInfo, fix: str) -> None:
        saved = WorkerInfo(**{k: int(state[k]) for k in ("rank", "world_size", "worker", "num_workers")})
        if saved != who:
            raise ValueError(f"{self._where}: reader state was saved by {saved}; this reader is {who}; {fix}")
