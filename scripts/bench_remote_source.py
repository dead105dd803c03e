"""Converting from S3 task by task: the download cache's disk high-water mark against the source's size.

    python scripts/bench_remote_source.py   -> benchmarks/results/remote_source.json

Each fixture is copied into a real S3 server (SeaweedFS on 127.0.0.1, tests/s3server.py) and converted
from ``s3://`` at 1 worker (and 2) into several shards. A thread sums the sizes of the files under the
cache folder every 5 ms (hard links once): its maximum is the high-water mark (meta/'s copy included).
Downloaded bytes: what the tasks report to datatrove's stats (``source_downloaded_bytes``: files they
fetched rather than linked from the machine's shared folder), read between the part and finalize.
``largest_task_mb`` is the most one task needs (the whole files its episodes live in), from the plan
alone: the 1-worker high-water mark should be about that (meta/ is removed before the tasks start).
Shards are checked byte-equal to the local conversion's. Last, from the plan alone (no
download): what each task would fetch from a DROID-like 10,000-episode source (bench_convert_plan.py's
layout), the 1-worker bound at scale.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchenv import write_record

from lerobot_wds import ConvertConfig, convert
from lerobot_wds.converter.convert import convert_part, plan_conversion
from lerobot_wds.converter.finalize import finalize
from lerobot_wds.converter.workdir import WORK_DIR

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared/fixtures"
sys.path.insert(0, str(ROOT / "tests"))  # the tests' S3 server: one copy
# (dataset, shard size MB): g1 is one 31 MB mp4 + one data file for 10 episodes (every shard needs both);
# multi spreads 24 episodes over 8 mp4s and 8 data files (neighbouring shards share one file per stream)
RUNS = (("g1", 8.0), ("multi", 0.4), ("bench", 3.0))


def tree_bytes(folder: Path) -> int:
    """Bytes on disk under ``folder``: a file hard-linked into two task folders (handed over) counts once."""
    sizes = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(FileNotFoundError):  # removed between the listing and the stat
                stat = os.stat(os.path.join(dirpath, name))
                sizes[stat.st_dev, stat.st_ino] = stat.st_size
    return sum(sizes.values())


class HighWater:
    """The largest total size of the files under ``folder``, sampled every ``period_s`` on a thread."""

    def __init__(self, folder: Path, period_s: float = 0.005) -> None:
        self.folder, self.period_s, self.peak, self.samples = folder, period_s, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_bytes(self.folder))
            self.samples += 1
            time.sleep(self.period_s)

    def __enter__(self) -> HighWater:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(name: str, shard_mb: float, workers: int, url: str, options: dict, work: Path) -> dict[str, Any]:
    local = FIXTURES / name
    plan = plan_conversion(str(local), ConvertConfig(shard_size_mb=shard_mb))
    files = plan.source.file_sizes(plan.source.files_of(e.episode_index for e in plan.episodes))
    per_task = [sum(files[f] for f in plan.source.files_of(s.episodes)) for s in plan.shards]
    meta = tree_bytes(local / "meta")
    reference = work / f"{name}-local"
    if not reference.exists():
        convert(str(local), str(reference), ConvertConfig(shard_size_mb=shard_mb))
    row: dict[str, Any] = {
        "dataset": name, "shard_size_mb": shard_mb, "workers": workers, "shards": len(plan.shards),
        "source_mb": round(sum(files.values()) / 1e6, 2), "meta_mb": round(meta / 1e6, 3),
        "largest_task_mb": round(max(per_task) / 1e6, 2),
    }  # fmt: skip
    cache, dest = work / f"cache-{name}-{workers}", work / f"out-{name}-{workers}"
    cache.mkdir()
    config = ConvertConfig(shard_size_mb=shard_mb, workers=workers, source_storage_options=options,
                           cache_dir=str(cache))  # fmt: skip
    with HighWater(cache) as high:
        started = time.perf_counter()
        # convert = its one part + finalize; between the two, datatrove's stats of the tasks are readable
        convert_part(url, str(dest), config, tasks=1, task_index=0)
        stats = json.loads((dest / WORK_DIR / "datatrove/stats.json").read_text())
        manifest = finalize(str(dest))
        wall_s = time.perf_counter() - started
    for shard in manifest.shards:
        if (dest / shard.path).read_bytes() != (reference / shard.path).read_bytes():
            raise SystemExit(f"{name}: {shard.path} differs from the local conversion's")
    downloaded = stats[0]["stats"]["source_downloaded_bytes"]["total"]
    row |= {"high_water_mb": round(high.peak / 1e6, 2), "downloaded_mb": round(downloaded / 1e6, 2),
            "samples": high.samples, "wall_s": round(wall_s, 2),
            "left_in_cache_bytes": tree_bytes(cache)}  # fmt: skip
    row["high_water_vs_source"] = round(row["high_water_mb"] / row["source_mb"], 3)
    row["downloaded_vs_source"] = round(row["downloaded_mb"] / row["source_mb"], 3)
    return row


def at_scale(num_episodes: int, work: Path, shard_sizes_mb: tuple[float, ...]) -> list[dict[str, Any]]:
    """What each task would download from a DROID-like source, from the plan alone (nothing downloaded):
    scripts/bench_convert_plan.py's synthetic layout (3 cameras, ~200 MB mp4s of 50 episodes, ~100 MB
    data files of 1,000; sparse files), at each shard size."""
    from bench_convert_plan import build_source

    root = work / f"synthetic-{num_episodes}"
    build_source(root, num_episodes)
    return [_task_downloads(root, num_episodes, size) for size in shard_sizes_mb]


def _task_downloads(root: Path, num_episodes: int, shard_size_mb: float) -> dict[str, Any]:
    plan = plan_conversion(str(root), ConvertConfig(shard_size_mb=shard_size_mb))
    source = plan.source
    sizes = source.file_sizes(source.files_of(e.episode_index for e in plan.episodes))
    needs = [set(source.files_of(s.episodes)) for s in plan.shards]
    per_task = [sum(sizes[f] for f in files) for files in needs]
    previous = [set(), *needs[:-1]]  # at 1 worker a task gets the files its predecessor had handed over
    handed = [sum(sizes[f] for f in files - before) for before, files in zip(previous, needs, strict=True)]
    total = sum(sizes.values())
    return {
        "episodes": num_episodes, "shard_size_mb": shard_size_mb, "shards": len(plan.shards),
        "source_mb": round(total / 1e6, 1), "largest_task_mb": round(max(per_task) / 1e6, 1),
        "mean_task_mb": round(sum(per_task) / len(per_task) / 1e6, 1),
        "downloaded_vs_source_1_worker": round(sum(handed) / total, 3),
        "downloaded_vs_source_tasks_apart": round(sum(per_task) / total, 3),
    }  # fmt: skip


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/remote_source.json")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--scale-episodes", type=int, default=10_000, help="the plan-only DROID-like row")
    args = parser.parse_args()
    import s3fs
    from s3server import seaweedfs

    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, seaweedfs(_folder(Path(tmp) / "weed")) as options:
        fs = s3fs.S3FileSystem(**options)
        fs.mkdir("sources")
        for name, shard_mb in RUNS:
            fs.put(str(FIXTURES / name), f"sources/{name}", recursive=True)
            for workers in args.workers:
                rows.append(measure(name, shard_mb, workers, f"s3://sources/{name}", options, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        scale = at_scale(args.scale_episodes, Path(tmp), (256.0, 1024.0))  # ConvertConfig's default, 4x
        print(json.dumps(scale), flush=True)
    out = {
        "command": "python scripts/bench_remote_source.py",
        "load_avg_before_after": [round(v, 2) for v in (*load_before, *os.getloadavg())],
        "results": rows,
        "at_scale": scale,
    }
    write_record(args.out.resolve(), out)


if __name__ == "__main__":
    main()
