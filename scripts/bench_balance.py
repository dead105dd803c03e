"""Padding per epoch: samples repeated so that every rank yields as many as the others (the DDP contract).

    python scripts/bench_balance.py

A pure plan computation (no bytes): a synthetic 1,000-episode manifest (lengths 50-450 frames, seeded),
world sizes 1-64 x DataLoader workers 0-8, one epoch planned for every reader, by the whole-episode
split (before session 6) and by the frame split (now). Writes benchmarks/results/balance.json
(`scripts/plot_bench.py` renders its table in BENCHMARKS.md).
"""

from __future__ import annotations

import random
from pathlib import Path

from benchenv import write_record

from lerobot_wds.format import EpisodeEntry
from lerobot_wds.reader.order import Partition, WorkerInfo, plan_slot

ROOT = Path(__file__).resolve().parent.parent
NUM_EPISODES = 1_000
WORLD_SIZES = [1, 2, 4, 8, 16, 32, 64]
WORKERS = [0, 1, 2, 4, 8]  # 0: the training process reads (one reader per rank, as 1 worker)


def synthetic_episodes() -> list[EpisodeEntry]:
    rng = random.Random(0)
    lengths = [rng.randint(50, 450) for _ in range(NUM_EPISODES)]
    starts = [sum(lengths[:i]) for i in range(NUM_EPISODES)]
    return [
        EpisodeEntry(episode_index=i, num_frames=n, dataset_from_index=s, shard=f"shard-{i // 100:06d}.tar",
                     offset_bytes=0, size_bytes=n * 20_000, task_indices=(0,))
        for i, (n, s) in enumerate(zip(lengths, starts, strict=True))
    ]  # fmt: skip


def repeated(
    episodes: list[EpisodeEntry], world_size: int, workers: int, partition: Partition
) -> dict[str, int]:
    """Samples repeated in epoch 0 over all readers, and the most any one reader repeats."""
    num_workers = max(workers, 1)
    counts = []
    for rank in range(world_size):
        for worker in range(num_workers):
            who = WorkerInfo(rank=rank, world_size=world_size, worker=worker, num_workers=num_workers)
            counts.append(
                plan_slot(episodes, who, seed=0, epoch=0, shuffle=True, partition=partition).num_repeated
            )
    return {"repeated": sum(counts), "max_per_reader": max(counts)}


def main() -> None:
    episodes = synthetic_episodes()
    frames = sum(e.num_frames for e in episodes)
    results = [
        {"world_size": w, "workers": n, "episodes": repeated(episodes, w, n, "episodes"),
         "frames": repeated(episodes, w, n, "frames")}
        for w in WORLD_SIZES for n in WORKERS
    ]  # fmt: skip
    record = {
        "command": "python scripts/bench_balance.py",
        "dataset": {"episodes": NUM_EPISODES, "frames": frames, "lengths": "uniform 50-450, seed 0"},
        "results": results,
    }
    write_record("balance.json", record)


if __name__ == "__main__":
    main()
