"""Converter throughput and size overhead; writes benchmarks/results/convert.json.

    python scripts/bench_convert.py [--repeats 3]

Per-worker MB/s is measured in-process (one shard task, no executor start-up); total MB/s is the
whole `convert` call (planning, datatrove executor and its process start-up, manifest) at 1 and 2
workers. Overhead = shard bytes / source bytes (data + video files) - 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchenv import write_record

from lerobot_wds import ConvertConfig, convert
from lerobot_wds.converter.plan import ShardPlan, estimate_source_bytes
from lerobot_wds.converter.shards import write_shard
from lerobot_wds.converter.source import open_source

ROOT = Path(__file__).resolve().parent.parent
DATASETS = {  # name -> folder (written by LeRobot 0.6.1's LeRobotDataset writer)
    "bench (2x 240x320 AV1)": ROOT.parent / "shared/fixtures/bench",
    "multi (2x 96x128 AV1)": ROOT / "tests/data/multi",
    "h264 (3x 96x128 H.264)": ROOT / "tests/data/h264",
}


def source_bytes(folder: Path) -> int:
    return sum(
        p.stat().st_size for sub in ("data", "videos") for p in (folder / sub).rglob("*") if p.is_file()
    )


def one_task_s(folder: Path, work: Path) -> float:
    """A single shard task holding every episode, in this process: the per-worker rate."""
    source = open_source(str(folder))
    plan = ShardPlan(shard_index=0, path="shards/shard-000000.tar", episodes=tuple(source.episodes))
    started = time.perf_counter()
    write_shard(source, plan, work / "one.tar")
    return time.perf_counter() - started


def full_convert(folder: Path, dest: Path, workers: int, shard_size_mb: float) -> tuple[float, int]:
    shutil.rmtree(dest, ignore_errors=True)
    started = time.perf_counter()
    result = convert(str(folder), str(dest), ConvertConfig(workers=workers, shard_size_mb=shard_size_mb))
    return time.perf_counter() - started, result.manifest.total_bytes


def bench(name: str, folder: Path, repeats: int) -> dict[str, object]:
    src = source_bytes(folder)
    lerobot = open_source(str(folder))
    assert sum(estimate_source_bytes(lerobot, list(lerobot.episodes.values())).values()) in range(
        src - 10, src + 10
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        task_s = statistics.median(one_task_s(folder, work) for _ in range(repeats))
        shard_size_mb = src / 1e6 / 4  # four shards: something for two workers to share
        totals = {}
        for workers in (1, 2):
            runs = [full_convert(folder, work / "out", workers, shard_size_mb) for _ in range(repeats)]
            totals[workers] = statistics.median(t for t, _ in runs)
            shard_bytes = runs[0][1]
        _, default_bytes = full_convert(folder, work / "default", 1, 256.0)
    return {
        "dataset": name,
        "source_mb": round(src / 1e6, 2),
        "per_worker_mb_s": round(src / 1e6 / task_s, 1),
        "total_mb_s_1_worker": round(src / 1e6 / totals[1], 1),
        "total_mb_s_2_workers": round(src / 1e6 / totals[2], 1),
        "overhead_default_shards": round(default_bytes / src - 1, 4),
        "overhead_4_shards": round(shard_bytes / src - 1, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/convert.json")
    args = parser.parse_args()
    results = [bench(name, folder, args.repeats) for name, folder in DATASETS.items() if folder.is_dir()]
    for row in results:
        print(json.dumps(row))
    write_record(args.out.resolve(), {"command": "python scripts/bench_convert.py", "results": results})


if __name__ == "__main__":
    main()
