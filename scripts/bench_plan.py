"""Plan cost at DROID's size: parse a synthetic 130,000-episode / 26,000,000-frame manifest and plan an epoch.

    python scripts/bench_plan.py

Measures, in a fresh process: manifest parse time, one reader's epoch plan (`plan_slot`) for 8 ranks x
4 workers, and the memory the parsed manifest and plan hold (RSS growth) next to the process peak.
Results go to benchmarks/results/plan.json (target from the performance issue: under 2 s and 300 MB).
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchenv import write_record

from lerobot_wds import format as fmt
from lerobot_wds.reader.order import WorkerInfo, plan_slot

ROOT = Path(__file__).resolve().parent.parent
NUM_EPISODES = 130_000
EPISODES_PER_SHARD = 100


def synthetic_manifest() -> bytes:
    rng = random.Random(0)
    lengths = [rng.randint(100, 300) for _ in range(NUM_EPISODES)]  # mean 200: 26M frames
    shards, episodes, first = [], [], 0
    for shard_index in range(0, NUM_EPISODES, EPISODES_PER_SHARD):
        path = fmt.shard_path(shard_index // EPISODES_PER_SHARD)
        group = range(shard_index, min(shard_index + EPISODES_PER_SHARD, NUM_EPISODES))
        offset = 0
        for e in group:
            size = lengths[e] * 20_000
            episodes.append(
                fmt.EpisodeEntry(episode_index=e, num_frames=lengths[e], dataset_from_index=first, shard=path,
                                 offset_bytes=offset, size_bytes=size, task_indices=(e % 50,))
            )  # fmt: skip
            first += lengths[e]
            offset += size
        shards.append(fmt.ShardEntry(path=path, size_bytes=offset, sha256="0" * 64, episodes=tuple(group),
                                     num_frames=sum(lengths[e] for e in group)))  # fmt: skip
    manifest = fmt.Manifest(
        format_version=fmt.FORMAT_VERSION,
        source=fmt.SourceInfo(location="synthetic/droid", revision=None, codebase_version="v3.0"),
        fps=15, features={}, camera_keys=["observation.images.wrist"], options={}, shards=shards,
        episodes=episodes,
    )  # fmt: skip
    return manifest.to_json()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def measure(path: Path) -> dict[str, object]:
    """In a fresh process: parse the manifest file and plan one reader's epoch."""
    rss_before_mb = _rss_mb()
    started = time.perf_counter()
    manifest = fmt.Manifest.from_json(path.read_bytes(), str(path))
    parsed_s = time.perf_counter() - started
    started = time.perf_counter()
    who = WorkerInfo(rank=3, world_size=8, worker=1, num_workers=4)
    plan = plan_slot(manifest.episodes, who, seed=0, epoch=0, shuffle=True)
    plan_s = time.perf_counter() - started
    rss_after_mb = _rss_mb()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "episodes": manifest.num_episodes,
        "frames": manifest.num_frames,
        "manifest_mb": round(path.stat().st_size / 1e6, 1),
        "parse_s": round(parsed_s, 2),
        "plan_slot_s": round(plan_s, 2),
        "total_s": round(parsed_s + plan_s, 2),
        "rss_growth_mb": round(rss_after_mb - rss_before_mb),  # parsed manifest + plan, still held
        "process_peak_rss_mb": round(peak_mb),  # including Python, numpy and torch
        "reader_episodes": len(plan.entries),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        print(json.dumps(measure(Path(sys.argv[2]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifest.json"
        path.write_bytes(synthetic_manifest())
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(path)], capture_output=True, text=True
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
    print(json.dumps(result))
    out = ROOT / "benchmarks/results/plan.json"
    write_record(out.resolve(), {"command": "python scripts/bench_plan.py", "result": result})


if __name__ == "__main__":
    main()
