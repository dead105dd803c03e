"""The soak's ledger and its checker: what every rank handed out, and the proof that nothing was lost.

Every rank appends one JSON line per batch to ``ledger/a{attempt}-r{rank}.jsonl``: attempt, rank, epoch,
global step, and per sample its ``index``, ``episode_index`` and ``frame_index`` (one dataset: dataset 0).
At each epoch's end it adds the batch counts of all ranks (gathered) and its processes' RSS.

A killed attempt's batches after its last committed checkpoint were never trained on: the next attempt
hands them out again from that checkpoint, as a trainer that restores its model from the same step
does. The checker therefore looks at the *committed* stream: attempt ``a``'s batches up to the step
attempt ``a + 1`` resumed from, and everything of the last attempt. Per epoch it checks:

- every frame of the dataset at least once (``lost`` counts the missing ones);
- repeats only as the plan pads: an epoch run in one layout (ranks x workers) must equal, rank by rank
  and batch by batch, the pure plan of an uninterrupted run (``reader_schedule``, batched per worker and
  interleaved as the DataLoader does), padding included; an epoch resumed elastically may repeat up to
  ``ranks - 1`` samples per start (each start's plan is padded to a multiple of its ranks);
- each sample's ``episode_index``/``frame_index`` agree with its ``index`` (the rows came from the right
  episode);
- every rank the same number of batches at every epoch end (the count DDP needs equal).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lerobot_wds import ShardedLeRobotDataset
from lerobot_wds.reader.order import WorkerInfo
from lerobot_wds.reader.pipeline import reader_schedule


@dataclass(frozen=True, slots=True)
class Batch:
    attempt: int
    rank: int
    epoch: int
    step: int
    indices: list[int]
    episodes: list[int]
    frames: list[int]


@dataclass(slots=True)
class Ledger:
    batches: list[Batch] = field(default_factory=list)
    epoch_ends: list[dict[str, Any]] = field(default_factory=list)
    torn_lines: int = 0  # a killed rank's last line, cut mid-write


def read_ledger(folder: Path) -> Ledger:
    ledger = Ledger()
    for path in sorted(folder.glob("a*-r*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                ledger.torn_lines += 1
                continue
            if record.get("kind") == "epoch_end":
                ledger.epoch_ends.append(record)
            else:
                ledger.batches.append(
                    Batch(
                        record["a"],
                        record["r"],
                        record["e"],
                        record["s"],
                        record["i"],
                        record["ep"],
                        record["f"],
                    )
                )
    return ledger


def committed(batches: list[Batch], resumed_steps: list[int]) -> list[Batch]:
    """The batches a trainer kept: attempt ``a``'s up to the step attempt ``a + 1`` resumed from.
    ``resumed_steps[a]``: the checkpoint step attempt ``a`` started from (0: the beginning)."""
    cuts = [*resumed_steps[1:], float("inf")]
    return sorted(
        (b for b in batches if b.step <= cuts[b.attempt]), key=lambda b: (b.epoch, b.attempt, b.step, b.rank)
    )


def planned_batches(
    dataset: ShardedLeRobotDataset, layout: tuple[int, int], rank: int, epoch: int, batch_size: int
) -> list[list[int]]:
    """Rank ``rank``'s batches of ``epoch`` in an uninterrupted run of ``layout`` = (ranks, workers):
    each worker's draws in batches, taken from the workers in turn as torch's DataLoader does."""
    world_size, num_workers = layout
    per_worker = []
    for worker in range(max(num_workers, 1)):
        who = WorkerInfo(rank=rank, world_size=world_size, worker=worker, num_workers=max(num_workers, 1))
        draws = reader_schedule(dataset.entries, dataset.config, who, epoch)
        indices = [d.entry.dataset_from_index + d.frame_index for d in draws]
        per_worker.append([indices[i : i + batch_size] for i in range(0, len(indices), batch_size)])
    batches: list[list[int]] = []
    for turn in range(max(len(w) for w in per_worker)):
        batches += [w[turn] for w in per_worker if turn < len(w)]
    return batches


@dataclass(slots=True)
class EpochCheck:
    epoch: int
    samples: int
    layouts: list[tuple[int, int]]
    elastic: bool
    lost: int
    repeated: int  # beyond the padding the plan allows
    padding: int  # repeats the plan allows (exact epochs: made)
    errors: list[str]


def check_epoch(
    dataset: ShardedLeRobotDataset,
    batches: list[Batch],
    layouts: dict[int, tuple[int, int]],
    epoch: int,
    batch_size: int,
) -> EpochCheck:
    """``batches``: the committed batches of ``epoch``; ``layouts``: attempt -> (ranks, workers)."""
    errors = []
    indices = [i for b in batches for i in b.indices]
    counts = Counter(indices)
    lost = sum(1 for i in range(dataset.num_frames) if i not in counts)
    extra = len(indices) - len(counts)
    used = sorted({layouts[b.attempt] for b in batches})
    elastic = len(used) > 1
    if not elastic:
        plans = [planned_batches(dataset, used[0], rank, epoch, batch_size) for rank in range(used[0][0])]
        padding = sum(len(b) for plan in plans for b in plan) - dataset.num_frames
        for rank, want in enumerate(plans):
            got = [b.indices for b in batches if b.rank == rank]
            if got != want:
                pairs = zip(got, want, strict=False)
                where = next((k for k, (g, w) in enumerate(pairs) if g != w), min(len(got), len(want)))
                errors.append(
                    f"epoch {epoch}, rank {rank}: batch {where} differs from the uninterrupted run's plan; "
                    f"got {len(got)} batches, expected {len(want)}"
                )
    else:  # each start pads its plan up to a multiple of its ranks, as DistributedSampler does
        padding = sum(layouts[attempt][0] - 1 for attempt in {b.attempt for b in batches})
    repeated = max(extra - padding, 0)
    if lost:
        errors.append(f"epoch {epoch}: {lost} frames never handed out; expected all {dataset.num_frames}")
    if repeated:
        errors.append(f"epoch {epoch}: {extra} repeats; expected at most {padding} (padding)")
    starts = {entry.episode_index: entry.dataset_from_index for entry in dataset.entries}
    for b in batches:
        for index, episode, frame in zip(b.indices, b.episodes, b.frames, strict=True):
            if episode not in starts or starts[episode] + frame != index:
                errors.append(
                    f"epoch {epoch}, step {b.step}: index {index} is not frame {frame} of episode {episode}"
                )
                break
    return EpochCheck(epoch, len(indices), used, elastic, lost, repeated, padding, errors)


def check_batch_counts(epoch_ends: list[dict[str, Any]]) -> list[str]:
    """Every epoch end: all ranks handed out the same number of batches (else DDP would hang)."""
    return [
        f"epoch {end['e']} (attempt {end['a']}): batch counts per rank {end['all']}; expected all equal"
        for end in epoch_ends
        if len(set(end["all"])) != 1
    ]
