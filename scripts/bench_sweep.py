"""The reader's cost curve: samples/s and peak RSS against `episode_pool_size` and the action window.

    python scripts/bench_sweep.py [--datasets bench multi] [--pool-sizes 1 4 16 64] [--action-steps 1 16 64]

The workload is bench_read.py's (batch 32, first camera `[-1/fps, 0]`, other cameras at the current
frame, 5 warm-up batches) with one knob changed at a time: the pool size at 16 action steps, then the
action window at the library's default pool of 64 episodes. Measured for bench_read.py's rows
`defaults` and `fast` (their options are bench_read.VARIANTS: one table for both scripts), with
`DataLoader(num_workers=0)`.
Every point runs in a fresh child process of bench_read.py, so its peak RSS (whole process tree,
sampled every 20 ms) belongs to that configuration alone. A pool larger than the dataset holds every
episode (bench has 40, multi 24): `num_episodes` is in each row.

Results go to benchmarks/results/sweep.json. The default run (2 datasets x 2 variants x 6 points,
40 timed batches each, as in read.json) takes ~4 minutes on a 2-core machine (a child is ~4-7 s of
start-up plus its batches); lower `--batches` if the machine is busy. Compare only numbers measured
in one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench_read import (
    BATCH_SIZE,
    ROOT,
    WARMUP_BATCHES,
    convert_once,
    dataset_info,
    run_child,
    write_results,
)

VARIANTS = ("defaults", "fast")  # rows of bench_read.VARIANTS
BASE_POOL_SIZE = 64  # ReaderConfig.episode_pool_size's default: held while the window varies
BASE_ACTION_STEPS = 16  # bench_read.py's workload: held while the pool size varies


def points(pool_sizes: list[int], action_steps: list[int]) -> list[tuple[int, int]]:
    """(episode_pool_size, action_steps) pairs: one knob at a time, the shared base point once."""
    pairs = [(pool, BASE_ACTION_STEPS) for pool in pool_sizes]
    pairs += [(BASE_POOL_SIZE, steps) for steps in action_steps]
    return sorted(set(pairs))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["bench", "multi"])
    parser.add_argument("--pool-sizes", type=int, nargs="+", default=[1, 4, 16, BASE_POOL_SIZE])
    parser.add_argument("--action-steps", type=int, nargs="+", default=[1, BASE_ACTION_STEPS, 64])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--workers", type=int, nargs="+", default=[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/sweep.json")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []
    for name in args.datasets:
        url = convert_once(name)
        info = dataset_info(url)
        for workers in args.workers:
            for variant in args.variants:
                for pool_size, steps in points(args.pool_sizes, args.action_steps):
                    result = run_child(
                        sys.executable, "ours", url=url, variant=variant, workers=workers,
                        batches=args.batches, seed=args.seed, episode_pool_size=pool_size,
                        action_steps=steps,
                    )  # fmt: skip
                    row = {"dataset": name, **info, "num_workers": workers, "variant": variant}
                    row |= {"episode_pool_size": pool_size, "action_steps": steps, **result}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    write_results(
        args.out,
        rows,
        batch_size=BATCH_SIZE,
        warmup_batches=WARMUP_BATCHES,
        batches=args.batches,
        base={"episode_pool_size": BASE_POOL_SIZE, "action_steps": BASE_ACTION_STEPS},
        elapsed_s=round(time.perf_counter() - started),
    )


if __name__ == "__main__":
    main()
