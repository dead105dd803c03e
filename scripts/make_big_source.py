"""A large LeRobot v3 source made of g1's real episodes repeated: episode i is g1's episode i % 10.

    python scripts/make_big_source.py [--repeat 40] [--dest /tmp/g1x40] [--overwrite]

For the converter's 1-vs-2-worker crossover (`bench_workers.py --source`) and the routes benchmark
(`bench_routes.py`): 40x is 400 episodes, ~1.25 GB. g1 (../shared/fixtures/g1: 480x640 AV1, 10
episodes, 32 MB) is converted to shards once in a temp folder, then its episodes are read back (ranged
reads, crc-checked: `export`'s reader) and written again and again with the package's own LeRobot
writer (converter/lerobot_writer.py, what `lerobot-wds export` writes with):

- `episode_index` i, `index` contiguous (`dataset_from_index` = the frames before it); `frame_index`,
  `timestamp`, `task_index`, tasks, per-episode stats and every other value as in g1's episode i % 10;
- data files rolled over at g1's `data_files_size_in_mb` (1 MB) and videos at its
  `video_files_size_in_mb` (40 MB) by LeRobot's recording rules, so the files are what LeRobot's
  recorder writes for that many episodes (many files of bounded size); the episode table in one file.

Deterministic: the same bytes for the same repeat (no clock, no randomness). Written into a staging
folder beside DEST, renamed to DEST at the end. The data is never committed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa

from lerobot_wds import ConvertConfig, convert
from lerobot_wds import format as fmt
from lerobot_wds.converter.export import (
    INFO_PATH,
    _episode_stats,
    _read_episode,
    _read_meta_files,
    _renumbered,
    _write_meta,
)
from lerobot_wds.converter.lerobot_writer import LeRobotWriter
from lerobot_wds.sample import EpisodeSample

ROOT = Path(__file__).resolve().parent.parent
G1 = ROOT.parent / "shared/fixtures/g1"
LEROBOT_VIDEO_FILES_SIZE_MB = 200.0  # LeRobot 0.6's DEFAULT_VIDEO_FILE_SIZE_IN_MB, if info.json has none


def read_source(source: Path) -> tuple[list[EpisodeSample], dict[str, bytes], pa.Table | None, list[str]]:
    """The source's episodes (in order), meta files, per-episode stats and cameras, via its shards."""
    with tempfile.TemporaryDirectory(prefix="make-big-source-") as work:
        shards = str(Path(work) / "shards")
        convert(str(source), shards, ConvertConfig())
        manifest = fmt.read_manifest(shards)
        samples = [_read_episode(shards, manifest, entry, {}) for entry in manifest.episodes]
        meta, stats = _read_meta_files(shards, {}), _episode_stats(shards, manifest, {})
        return samples, meta, stats, manifest.camera_keys


def write_repeated(staging: Path, source: Path, repeat: int) -> dict[str, int]:
    """Write ``repeat`` copies of the source's episodes into ``staging``; return the totals."""
    samples, meta, stats, camera_keys = read_source(source)
    info = json.loads(meta[INFO_PATH])
    video_mb = float(info.get("video_files_size_in_mb", LEROBOT_VIDEO_FILES_SIZE_MB))
    writer = LeRobotWriter(staging, info, camera_keys, video_files_size_mb=video_mb)
    order = [i % len(samples) for i in range(repeat * len(samples))]
    num_frames = 0
    try:
        for episode_index, position in enumerate(order):
            sample = samples[position]
            rows = _renumbered(sample.rows, episode_index, num_frames)
            writer.add(sample, rows, episode_index=episode_index, dataset_from_index=num_frames)
            num_frames += rows.num_rows
    finally:
        writer.close()
    repeated_stats = stats.take(pa.array(order, pa.int64())) if stats is not None else None
    _write_meta(staging, info, meta, writer, repeated_stats, num_episodes=len(order), num_frames=num_frames)
    return {"episodes": len(order), "frames": num_frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40, help="copies of the source's episodes (default 40)")
    parser.add_argument("--dest", type=Path, help="output folder (default: /tmp/g1x<repeat>)")
    parser.add_argument("--source", type=Path, default=G1, help="a LeRobot v3 folder (default: g1)")
    parser.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat: got {args.repeat}, expected >= 1")
    dest = (args.dest or Path(f"/tmp/g1x{args.repeat}")).resolve()
    if dest.exists() and not args.overwrite:
        parser.error(f"{dest}: exists; choose another --dest or pass --overwrite")
    staging = dest.with_name(f".{dest.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        totals = write_repeated(staging, args.source, args.repeat)
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = [p for p in dest.rglob("*") if p.is_file()]
    data_files = sum(1 for p in files if p.parts[len(dest.parts)] == "data")
    video_files = sum(1 for p in files if p.parts[len(dest.parts)] == "videos")
    size_mb = sum(p.stat().st_size for p in files) / 1e6
    print(json.dumps({"dest": str(dest), **totals, "source_mb": round(size_mb, 1), "data_files": data_files,
                      "video_files": video_files}))  # fmt: skip


if __name__ == "__main__":
    main()
