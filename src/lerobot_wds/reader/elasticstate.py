"""``elastic_state``: a run's saved reader states combined into the rest of their epoch (elastic.py), for
a run with another number of ranks and workers to load."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .elastic import (
    Fill,
    Interval,
    KnownBad,
    Resume,
    draw_position,
    fallback_fill,
    left_per_slot,
    merge_intervals,
)
from .order import WorkerInfo, check_partition

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

    With ``on_error="skip"``, each reader state's ``skip_failed`` and ``skip_fill`` carry over (elastic.py:
    known-bad draws, fills): the new readers do not read again an episode a saved reader had found bad
    among that reader's remaining frames. A missing rank's bad episodes are unknown: they are found again.
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
    left = left_per_slot(resume.remaining, world_size, num_workers, draws)
    rest = Resume(
        world_size=resume.world_size,
        num_workers=resume.num_workers,
        num_frames=resume.num_frames,
        remaining=tuple(merge_intervals([i for intervals in left for i in intervals])),
        failed=tuple(known_bad(left, _failed_per_slot(readers, num_workers), resume.failed)),
        fills=tuple(_fills(readers, resume, left)),
    )
    return {
        **{k: first[k] for k in ("format_version", "fingerprint", "epoch", "partition", "num_frames")},
        "elastic": rest.to_json(),
    }


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
