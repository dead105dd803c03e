"""Converter planning at DROID's size: metadata read + size estimate + shard plan of a synthetic v3 source.

    python scripts/bench_convert_plan.py [--episodes 1000 3000 10000 30000 130000]

Builds, per size, a LeRobot v3 source's metadata with 3 cameras (info.json, tasks.parquet, the
episodes table split over files of 10,000 rows as LeRobot splits it) and its data/video files as
*sparse* files: their sizes are real (the estimate reads them), their bytes are never written.
Layout as LeRobot's writer would leave a DROID-like dataset: 50 episodes per mp4 (~200 MB), 1,000 per
data file, 1,000 files per chunk; 100-300 frames per episode at 15 fps (DROID: ~300 on average).
Then, in a fresh process per size, times ``open_source`` (metadata read) and ``plan_episodes``
(estimate + shard plan), the two steps of ``plan_conversion`` (what ``convert`` and
``convert --dry-run`` run), and reads the process's peak RSS. Results go to
benchmarks/results/convert_plan.json (target from issue 14: under 10 s and 1 GB at 130,000 episodes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from benchenv import write_record

ROOT = Path(__file__).resolve().parent.parent
CAMERAS = (
    "observation.images.exterior_1_left",
    "observation.images.exterior_2_left",
    "observation.images.wrist",
)
FPS = 15
EPISODES_PER_VIDEO_FILE = 50
EPISODES_PER_DATA_FILE = 1000
EPISODES_PER_META_FILE = 10_000
FILES_PER_CHUNK = 1000  # LeRobot's DEFAULT_CHUNK_SIZE
VIDEO_BYTES_PER_FRAME = 20_000  # one camera; ~200 MB per 50-episode mp4
DATA_BYTES_PER_FRAME = 500
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
SHARD_SIZE_MB = 256.0  # ConvertConfig's default


def _info() -> dict[str, object]:
    features: dict[str, object] = {
        key: {"dtype": "video", "shape": [180, 320, 3], "names": ["height", "width", "channels"]}
        for key in CAMERAS
    }
    for name, shape in (("action", [7]), ("observation.state", [8])):
        features[name] = {"dtype": "float32", "shape": shape, "names": None}
    for name in ("timestamp",):
        features[name] = {"dtype": "float32", "shape": [1], "names": None}
    for name in ("frame_index", "episode_index", "index", "task_index"):
        features[name] = {"dtype": "int64", "shape": [1], "names": None}
    return {
        "codebase_version": "v3.0",
        "fps": FPS,
        "features": features,
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "chunks_size": FILES_PER_CHUNK,
    }


def _file_position(number: int) -> tuple[int, int]:
    return divmod(number, FILES_PER_CHUNK)


def _sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)


def build_source(root: Path, num_episodes: int) -> int:
    """Write the synthetic source's metadata and sparse files; return its total frames."""
    rng = random.Random(0)
    lengths = [rng.randint(100, 300) for _ in range(num_episodes)]
    (root / "meta").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps(_info()))
    tasks = [f"task {i}" for i in range(50)]
    pq.write_table(
        pa.table({"task_index": list(range(len(tasks))), "__index_level_0__": tasks}),
        root / "meta/tasks.parquet",
    )
    columns: dict[str, list[object]] = {
        "episode_index": [],
        "tasks": [],
        "length": [],
        "dataset_from_index": [],
    }
    columns |= {"data/chunk_index": [], "data/file_index": []}
    for key in CAMERAS:
        for name in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
            columns[f"videos/{key}/{name}"] = []
    first = 0
    video_s = 0.0
    for episode, length in enumerate(lengths):
        if episode % EPISODES_PER_VIDEO_FILE == 0:
            video_s = 0.0
        columns["episode_index"].append(episode)
        columns["tasks"].append([tasks[episode % len(tasks)]])
        columns["length"].append(length)
        columns["dataset_from_index"].append(first)
        chunk, file = _file_position(episode // EPISODES_PER_DATA_FILE)
        columns["data/chunk_index"].append(chunk)
        columns["data/file_index"].append(file)
        chunk, file = _file_position(episode // EPISODES_PER_VIDEO_FILE)
        for key in CAMERAS:
            columns[f"videos/{key}/chunk_index"].append(chunk)
            columns[f"videos/{key}/file_index"].append(file)
            columns[f"videos/{key}/from_timestamp"].append(video_s)
            columns[f"videos/{key}/to_timestamp"].append(video_s + length / FPS)
        video_s += length / FPS
        first += length
    table = pa.table(columns)
    for number, start in enumerate(range(0, num_episodes, EPISODES_PER_META_FILE)):
        chunk, file = _file_position(number)
        path = root / f"meta/episodes/chunk-{chunk:03d}/file-{file:03d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(start, EPISODES_PER_META_FILE), path)
    _write_sparse_files(root, lengths)
    return first


def _write_sparse_files(root: Path, lengths: list[int]) -> None:
    for number, start in enumerate(range(0, len(lengths), EPISODES_PER_DATA_FILE)):
        chunk, file = _file_position(number)
        frames = sum(lengths[start : start + EPISODES_PER_DATA_FILE])
        _sparse(root / DATA_PATH.format(chunk_index=chunk, file_index=file), frames * DATA_BYTES_PER_FRAME)
    for number, start in enumerate(range(0, len(lengths), EPISODES_PER_VIDEO_FILE)):
        chunk, file = _file_position(number)
        frames = sum(lengths[start : start + EPISODES_PER_VIDEO_FILE])
        for key in CAMERAS:
            path = root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
            _sparse(path, frames * VIDEO_BYTES_PER_FRAME)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def measure(root: Path) -> dict[str, object]:
    """In a fresh process: the two steps of ``plan_conversion``, timed apart, and the memory they take."""
    from lerobot_wds.converter.plan import plan_episodes
    from lerobot_wds.converter.source import open_source

    # open_source imports pandas on first use (pyarrow's to_pandas), ~0.3 s once per process: timed
    # apart, so that the read time is the metadata's (it used to be imported by the imports above)
    started = time.perf_counter()
    import pandas  # noqa: F401

    import_s = time.perf_counter() - started
    rss_before_mb = _rss_mb()
    started = time.perf_counter()
    source = open_source(str(root))
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    plan = plan_episodes(source, source.select(None), target_bytes=round(SHARD_SIZE_MB * 1e6))
    plan_s = time.perf_counter() - started
    rss_after_mb = _rss_mb()
    return {
        "episodes": len(plan.episodes),
        "frames": plan.num_frames,
        "source_files": len({s.file for e in plan.episodes for s in e.videos.values()})
        + len({e.data_file for e in plan.episodes}),
        "shards": len(plan.shards),
        "estimated_source_gb": round(plan.source_bytes / 1e9, 1),
        "lazy_import_s": round(import_s, 3),
        "metadata_read_s": round(read_s, 3),
        "estimate_and_plan_s": round(plan_s, 3),
        "total_s": round(read_s + plan_s, 3),
        # Python and the converter's imports (pyarrow, datatrove, torch, pandas) before the source is opened
        "rss_before_mb": round(rss_before_mb),
        "rss_growth_mb": round(rss_after_mb - rss_before_mb),  # source + plan, still held
        "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6),
    }


def run(num_episodes: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "source"
        started = time.perf_counter()
        build_source(root, num_episodes)
        built_s = time.perf_counter() - started
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(root)], capture_output=True, text=True, check=False
        )
        if child.returncode != 0:
            raise SystemExit(f"measuring {num_episodes} episodes failed:\n{child.stderr}")
    result: dict[str, object] = json.loads(child.stdout.strip().splitlines()[-1])
    print(json.dumps(result), f"(synthetic source built in {built_s:.1f} s)", flush=True)
    return result


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        print(json.dumps(measure(Path(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, nargs="+", default=[1000, 3000, 10_000, 30_000, 130_000])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/convert_plan.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    results = [run(n) for n in args.episodes]
    layout = {
        "cameras": len(CAMERAS),
        "episodes_per_video_file": EPISODES_PER_VIDEO_FILE,
        "episodes_per_data_file": EPISODES_PER_DATA_FILE,
        "episodes_per_meta_file": EPISODES_PER_META_FILE,
        "frames_per_episode": "100-300",
        "shard_size_mb": SHARD_SIZE_MB,
    }
    record = {
        "command": "python scripts/bench_convert_plan.py",
        "load_avg_before_after": [round(v, 2) for v in (*load_before, *os.getloadavg())],
        "layout": layout,
        "target": {"episodes": 130_000, "total_s": 10, "process_peak_rss_mb": 1000},
        "results": results,
    }
    write_record(args.out.resolve(), record)


if __name__ == "__main__":
    main()
