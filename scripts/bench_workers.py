"""Whole-`convert` MB/s at 1 and 2 workers over source sizes, and where 2 workers start to pay.

    python scripts/bench_workers.py [--repeats 2]   -> benchmarks/results/workers.json

Sources: the first N episodes of the real g1 recording (../shared/fixtures/g1, 480x640 AV1, 10
episodes, ~35 MB), shards of a quarter of the selection (so 2 workers have shards to share).

Model (a straight-line fit of each worker count alone is too noisy at these sizes): one worker runs
at R MB/s (total MB / total best time at 1 worker) after a fixed cost c1; two workers at best halve the
work (2 cores) after a start-up cost c2 (their pool's spawned processes import everything):
t1 = c1 + x / R, t2 = c2 + x / (2 R), so 2 workers pay past x = 2 R (c2 - c1). c1 and c2 are the mean
residuals. Past g1's ~35 MB this is an extrapolation, and said so. Run it on a quiet machine: the load
average is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from lerobot_wds import ConvertConfig, convert
from lerobot_wds.converter.convert import plan_conversion

ROOT = Path(__file__).resolve().parent.parent
G1 = ROOT.parent / "shared/fixtures/g1"
EPISODE_COUNTS = (2, 4, 7, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/workers.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for count in EPISODE_COUNTS:
            episodes = tuple(range(count))
            source_mb = plan_conversion(str(G1), ConvertConfig(episodes=episodes)).source_bytes / 1e6
            config = {"episodes": episodes, "shard_size_mb": source_mb / 4}
            for workers in (1, 2):
                times = []
                for _ in range(args.repeats):
                    dest = Path(work) / "out"
                    shutil.rmtree(dest, ignore_errors=True)
                    started = time.perf_counter()
                    result = convert(str(G1), str(dest), ConvertConfig(workers=workers, **config))
                    times.append(time.perf_counter() - started)
                best = min(times)
                rows.append({"episodes": count, "source_mb": round(source_mb, 2),
                             "shards": len(result.manifest.shards), "workers": workers,
                             "wall_s": [round(t, 3) for t in times],
                             "mb_per_s": round(source_mb / best, 1)})  # fmt: skip
                print(rows[-1], flush=True)
    best = {(r["workers"], r["source_mb"]): min(r["wall_s"]) for r in rows}
    sizes = sorted({r["source_mb"] for r in rows})
    rate = sum(sizes) / sum(best[1, x] for x in sizes)
    c1 = statistics.fmean(best[1, x] - x / rate for x in sizes)
    c2 = statistics.fmean(best[2, x] - x / (2 * rate) for x in sizes)
    crossover = 2 * rate * (c2 - c1)
    out = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_avg_before_after": [round(v, 2) for v in (*load_before, *os.getloadavg())],
        "source": "first N episodes of ../shared/fixtures/g1 (480x640 AV1); shards of 1/4 of the selection",
        "rows": rows,
        "model": "t1 = c1 + x/R, t2 = c2 + x/(2R); crossover x = 2R(c2 - c1)",
        "rate_mb_s_1_worker": round(rate, 1),
        "c1_s": round(c1, 3),
        "c2_s": round(c2, 3),
        "crossover_mb": round(crossover, 1),
        "crossover_note": "extrapolated past the measured sizes"
        if crossover > max(sizes)
        else "measured range",
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("rate_mb_s_1_worker", "c1_s", "c2_s", "crossover_mb")}))


if __name__ == "__main__":
    main()
