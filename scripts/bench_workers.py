"""Whole-`convert` MB/s at 1 and 2 workers over source sizes, and where 2 workers start to pay.

    python scripts/bench_workers.py [--source DIR] [--episodes 2,4,7,10] [--repeats 2]
                                    [--out benchmarks/results/workers.json]

The measured crossover needs a source large enough for workers to pay: g1's 10 episodes repeated 40x
(scripts/make_big_source.py: 400 episodes, ~1.25 GB; the first N of them are g1's episodes repeated):

    python scripts/make_big_source.py --repeat 40 --dest /tmp/g1x40
    python scripts/bench_workers.py --source /tmp/g1x40 --episodes 10,40,100,200,400

Each size is the first N episodes of --source (default: the real g1, 480x640 AV1, 10 episodes, 32 MB),
converted with shards of min(256 MB default, a quarter of the selection) so that 2 workers always have
shards to share; best of --repeats per size and worker count, converted into a temp folder (removed
after each run). The largest 1-worker output is then checked by `verify` (outside the timings).

Crossover, measured: the smallest measured size where 2 workers are faster (best of both), and the
size where t2 - t1 crosses zero by linear interpolation between the last measured size where 2 workers
were slower and that one. Model, kept for sources too small to cross (one worker runs at R MB/s =
total MB / total best time at 1 worker after a fixed cost c1; two workers at best halve the work
after a start-up cost c2, their pool's spawned processes importing everything): t1 = c1 + x / R,
t2 = c2 + x / (2 R), so 2 workers pay past x = 2 R (c2 - c1); c1 and c2 are the mean residuals.
Run it on a quiet machine: the load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchenv import write_record

from lerobot_wds import ConvertConfig, convert
from lerobot_wds.converter.convert import DEFAULT_SHARD_SIZE_MB, plan_conversion
from lerobot_wds.converter.verify import verify

ROOT = Path(__file__).resolve().parent.parent
G1 = ROOT.parent / "shared/fixtures/g1"
EPISODE_COUNTS = "2,4,7,10"  # g1's sizes; for the large source see the docstring


def time_convert(source: Path, work: Path, config: ConvertConfig, repeats: int) -> tuple[list[float], Any]:
    """Wall seconds of ``repeats`` fresh conversions, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        dest = work / "out"
        shutil.rmtree(dest, ignore_errors=True)
        started = time.perf_counter()
        result = convert(str(source), str(dest), config)
        times.append(time.perf_counter() - started)
    return times, result


def measure(source: Path, counts: list[int], repeats: int, work: Path) -> tuple[list[dict[str, Any]], bool]:
    """A row per (size, workers); whether the largest 1-worker output verified."""
    rows = []
    for count in counts:
        episodes = tuple(range(count))
        source_mb = plan_conversion(str(source), ConvertConfig(episodes=episodes)).source_bytes / 1e6
        shard_size_mb = min(DEFAULT_SHARD_SIZE_MB, source_mb / 4)
        for workers in (1, 2):
            config = ConvertConfig(episodes=episodes, shard_size_mb=shard_size_mb, workers=workers)
            times, result = time_convert(source, work, config, repeats)
            rows.append({"episodes": count, "source_mb": round(source_mb, 2),
                         "shards": len(result.manifest.shards), "workers": workers,
                         "wall_s": [round(t, 3) for t in times],
                         "mb_per_s": round(source_mb / min(times), 1)})  # fmt: skip
            print(rows[-1], flush=True)
    # the last run converted the largest size at 2 workers: verify a fresh 1-worker copy of it
    largest = ConvertConfig(episodes=tuple(range(counts[-1])), shard_size_mb=shard_size_mb, workers=1)
    time_convert(source, work, largest, 1)
    report = verify(str(work / "out"))
    if not report.ok:
        print(f"verify failed: {report.problems[:5]}", file=sys.stderr)
    return rows, report.ok


def crossover(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The measured crossover and the model's (see the module docstring)."""
    best = {(r["workers"], r["source_mb"]): min(r["wall_s"]) for r in rows}
    sizes = sorted({r["source_mb"] for r in rows})
    gap = [best[2, x] - best[1, x] for x in sizes]  # > 0: 2 workers slower
    first = next((i for i, g in enumerate(gap) if g < 0), None)
    measured = sizes[first] if first is not None else None
    interpolated = None
    if first is not None and first > 0:
        x0, x1, g0, g1 = sizes[first - 1], sizes[first], gap[first - 1], gap[first]
        interpolated = x0 + (x1 - x0) * g0 / (g0 - g1)
    rate = sum(sizes) / sum(best[1, x] for x in sizes)
    c1 = statistics.fmean(best[1, x] - x / rate for x in sizes)
    c2 = statistics.fmean(best[2, x] - x / (2 * rate) for x in sizes)
    modelled = 2 * rate * (c2 - c1)
    if measured is None:
        note = f"2 workers slower at every measured size (up to {sizes[-1]} MB): no measured crossover"
    elif interpolated is None:
        note = "2 workers faster already at the smallest measured size"
    else:
        note = "measured: interpolated between the two measured sizes either side of it"
    return {
        "crossover_measured_mb": measured,
        "crossover_interpolated_mb": None if interpolated is None else round(interpolated, 1),
        "crossover_note": note,
        "model": "t1 = c1 + x/R, t2 = c2 + x/(2R); crossover x = 2R(c2 - c1)",
        "rate_mb_s_1_worker": round(rate, 1),
        "c1_s": round(c1, 3),
        "c2_s": round(c2, 3),
        "crossover_modelled_mb": round(modelled, 1),
        "modelled_note": "extrapolated past the measured sizes" if modelled > sizes[-1] else "measured range",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=G1, help="a LeRobot v3 folder (default: g1)")
    parser.add_argument("--episodes", default=EPISODE_COUNTS, help="sizes: first N episodes, comma-separated")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/workers.json")
    args = parser.parse_args()
    counts = sorted(int(n) for n in args.episodes.split(","))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as work:
        rows, verified = measure(args.source, counts, args.repeats, Path(work))
    source = "first N episodes of ../shared/fixtures/g1 (480x640 AV1)"
    if args.source.resolve() != G1.resolve():
        info = json.loads((args.source / "meta/info.json").read_text())
        source = (f"first N episodes of {args.source.name} ({info['total_episodes']} episodes: g1's 10 "
                  "repeated by scripts/make_big_source.py, 480x640 AV1)")  # fmt: skip
    command = " ".join(["python scripts/bench_workers.py", *sys.argv[1:]])
    out = {
        "command": command,
        "load_avg_before_after": [round(v, 2) for v in (*load_before, *os.getloadavg())],
        "source": f"{source}; shards of min({DEFAULT_SHARD_SIZE_MB:g} MB, 1/4 of the selection)",
        "largest_output_verified": verified,
        "rows": rows,
        **crossover(rows),
    }
    write_record(args.out.resolve(), out)
    print(json.dumps({k: v for k, v in out.items() if k.startswith("crossover")}))


if __name__ == "__main__":
    main()
