"""One reader's start-up among 512 (64 ranks x 8 workers) on a DROID-size manifest: time to the plan of its
first batch, and memory held.

    python scripts/bench_cluster_plan.py

The manifest is bench_plan.py's synthetic 130,000 episodes / ~26M frames. Measured in a fresh process per
case (no bytes read, no decoding: the pure stages up to the first batch's draws):
- parse: the manifest file to a Manifest;
- plan: ``plan_slot`` for reader (rank 31, worker 3) of 64 x 8, its DrawSchedule and its first 32 draws;
- elastic: the same reader's first 32 draws after an elastic resume of a 512-reader run saved halfway
  through the epoch (``elastic_state`` of every saved reader's state, then ``ResumedSchedule``) into
  32 x 8 readers: the worst case replays up to a saved reader's whole schedule.
Results go to benchmarks/results/cluster_plan.json, with the machine's load average (a shared machine);
`scripts/plot_bench.py` renders its table in BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_plan import _rss_mb, synthetic_manifest
from benchenv import write_record

from lerobot_wds import format as fmt
from lerobot_wds.reader.config import ReaderConfig
from lerobot_wds.reader.elastic import Resume
from lerobot_wds.reader.elasticstate import elastic_state
from lerobot_wds.reader.order import WorkerInfo, reader_sizes
from lerobot_wds.reader.pipeline import reader_schedule

ROOT = Path(__file__).resolve().parent.parent
WORLD_SIZE, NUM_WORKERS = 64, 8
BATCH = 32


def measure(path: Path, case: str) -> dict[str, object]:
    rss_before_mb = _rss_mb()
    started = time.perf_counter()
    manifest = fmt.Manifest.from_json(path.read_bytes(), str(path))
    parse_s = time.perf_counter() - started
    entries = list(manifest.episodes)
    config = ReaderConfig()  # defaults: shuffle, pool of 64 episodes
    num_frames = manifest.num_frames
    states = []
    if case == "elastic":  # what each of the 512 saved readers' state says: halfway through its range
        sizes = reader_sizes(num_frames, WORLD_SIZE, NUM_WORKERS)
        states = [
            {"format_version": fmt.FORMAT_VERSION, "fingerprint": "-", "epoch": 0, "draws": sizes[slot] // 2,
             "rank": slot // NUM_WORKERS, "world_size": WORLD_SIZE, "worker": slot % NUM_WORKERS,
             "num_workers": NUM_WORKERS, "partition": "frames", "num_frames": num_frames}
            for slot in range(WORLD_SIZE * NUM_WORKERS)
        ]  # fmt: skip
    started = time.perf_counter()
    state_bytes = 0
    if case == "plan":
        who = WorkerInfo(rank=31, world_size=WORLD_SIZE, worker=3, num_workers=NUM_WORKERS)
        schedule = reader_schedule(entries, config, who, epoch=0)
    else:
        merged = elastic_state(states)
        state_bytes = len(json.dumps(merged))
        who = WorkerInfo(rank=15, world_size=WORLD_SIZE // 2, worker=3, num_workers=NUM_WORKERS)
        schedule = reader_schedule(entries, config, who, epoch=0, resume=Resume.from_json(merged["elastic"]))
    first_batch = [next(schedule) for _ in range(BATCH)]
    plan_s = time.perf_counter() - started
    return {
        "case": case,
        "episodes": manifest.num_episodes,
        "frames": num_frames,
        "readers": WORLD_SIZE * NUM_WORKERS,
        "parse_s": round(parse_s, 2),
        "first_batch_plan_s": round(plan_s, 2),
        "rss_growth_mb": round(_rss_mb() - rss_before_mb),  # manifest + plan + schedule, still held
        "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "elastic_state_bytes": state_bytes,
        "first_draws": len(first_batch),
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        print(json.dumps(measure(Path(sys.argv[2]), sys.argv[3])))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifest.json"
        path.write_bytes(synthetic_manifest())
        for case in ("plan", "elastic"):
            load = os.getloadavg()[0]
            child = subprocess.run(
                [sys.executable, __file__, "--measure", str(path), case],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(
                {**json.loads(child.stdout.strip().splitlines()[-1]), "load_avg_1min": round(load, 1)}
            )
            print(json.dumps(results[-1]))
    write_record("cluster_plan.json", {"command": "python scripts/bench_cluster_plan.py", "results": results})


if __name__ == "__main__":
    main()
