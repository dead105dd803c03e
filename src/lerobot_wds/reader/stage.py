"""The one protocol every reader stage follows, in the spirit of torchdata.nodes' ``BaseNode``.

A stage is an iterator over its source stage's output with three more methods:

- :meth:`Stage.state`: where the stage is, *as of the last value it handed out*, as a flat mapping of
  JSON-able ints (or lists of ints). A stage that adds nothing returns its source's state; one that
  keeps a position of its own adds keys of its own (``skip_*``). A stage that works ahead of its
  consumer (read-ahead, decode-ahead) returns the state its source had when the value it last handed
  out was taken, never the source's current one: so a checkpoint never counts work done ahead.
- :meth:`Stage.restore`: on a fresh stage, before its first value, continue from a :meth:`state`;
  each stage takes its own keys and passes the mapping on to its source.
- :meth:`Stage.close`: stop threads and drop what was read ahead; the stage yields nothing after it.

The schedule at the head of the chain (schedule.py, elastic.py) is pure: its state is the number of
draws taken, and restoring it replays draws without a byte of I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol, TypeVar

T_co = TypeVar("T_co", covariant=True)

StageState = Mapping[str, Any]  # flat, JSON-able: ints and lists of ints


class Stage(Iterator[T_co], Protocol):
    """An iterator with a checkpointable position (see the module docstring)."""

    def __next__(self) -> T_co: ...

    def state(self) -> dict[str, Any]:
        """Where this stage is, as of the last value it handed out."""
        ...

    def restore(self, state: StageState) -> None:
        """Continue from ``state`` (a fresh stage, before its first value)."""
        ...

    def close(self) -> None:
        """Stop any threads and drop values made ahead."""
        ...
