"""A DROID-shaped rehearsal: a multi-camera, multi-episode-file source on S3, converted in parallel parts.

    python scripts/make_big_source.py --source ../shared/fixtures/bench --repeat 30 --dest /tmp/droid-shaped
    python scripts/rehearse_droid.py --source /tmp/droid-shaped [--parts 4] [--parallel 2]
        -> benchmarks/results/droid_rehearsal.json

The source (``make_big_source.py`` of the ``bench`` fixture: 2 cameras at 240x320, episodes in ~10 MB mp4s
and ~1 MB data files, as LeRobot's recorder rolls them) is copied into a real S3 server (SeaweedFS on
127.0.0.1, tests/s3server.py). It is converted into another bucket by the task-index route: ``--parts``
processes of ``lerobot-wds convert s3://... s3://... --tasks P --task-index I``, ``--parallel`` at a time,
each with credentials from the environment, a cache folder and a temp folder of its own (standing for a
machine). Per part: wall time, peak RSS (``VmHWM``) and peak disk of its temp and cache folders (both
sampled every 20 ms), bytes read from the source (the tasks' datatrove stats). Then ``lerobot-wds
finalize`` and two streamed reads from the destination bucket: ``verify`` (every shard, every byte,
hashed) and the first items of a ``ShardedLeRobotDataset`` (decoded frames). Last, a projection to DROID
(~1.7 TB, FORMAT.md) on N machines from the measured throughput per part. The machine is shared: the load
average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchenv import write_record

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' S3 server: one copy
DROID_BYTES = 1.7e12  # DROID 1.0.1 as LeRobot v3 (FORMAT.md)
CLI = [sys.executable, "-m", "lerobot_wds.cli"]


def tree_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:  # removed between the listing and the stat
                continue
    return total


class DiskPeak:
    """The largest total size of the files under ``folders``, sampled on a thread."""

    def __init__(self, folders: list[Path], period_s: float = 0.02) -> None:
        self.folders, self.period_s, self.peak = folders, period_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.peak = max(self.peak, sum(tree_bytes(f) for f in self.folders))

    def start(self) -> DiskPeak:
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


class RssPeak:
    """A process's peak resident memory: its ``VmHWM`` (kernel-kept high-water mark of this executable's
    memory), read on a thread until it exits. ``wait4``'s ``ru_maxrss`` is not used: Linux carries the
    forked parent's RSS across ``exec`` into it, so every part reported this script's own ~820 MB."""

    def __init__(self, pid: int, period_s: float = 0.02) -> None:
        self.pid, self.period_s, self.peak_kib = pid, period_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                with open(f"/proc/{self.pid}/status") as status:
                    lines = [line for line in status if line.startswith("VmHWM:")]
            except (FileNotFoundError, ProcessLookupError):
                return
            if lines:
                self.peak_kib = max(self.peak_kib, int(lines[0].split()[1]))

    def start(self) -> RssPeak:
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kib


def run_parts(args: argparse.Namespace, src: str, dest: str, env: dict[str, str], work: Path) -> list[dict]:
    """Run the parts, ``args.parallel`` at a time; one row per part."""
    pending, running, rows = list(range(args.parts)), {}, []
    while pending or running:
        while pending and len(running) < args.parallel:
            index = pending.pop(0)
            tmp, cache = work / f"tmp-{index}", work / f"cache-{index}"
            tmp.mkdir()
            cache.mkdir()
            command = [
                *CLI,
                "-q",
                "convert",
                src,
                dest,
                "--shard-size-mb",
                str(args.shard_size_mb),
                "--tasks",
                str(args.parts),
                "--task-index",
                str(index),
                "--cache-dir",
                str(cache),
            ]
            process = subprocess.Popen(command, env={**env, "TMPDIR": str(tmp)})
            peaks = (DiskPeak([tmp, cache]).start(), RssPeak(process.pid).start())
            running[process.pid] = (index, process, time.perf_counter(), peaks)
        pid, status = os.waitpid(-1, 0)
        if pid not in running:
            continue
        index, process, started, (disk, rss) = running.pop(pid)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"part {index} failed with exit code {process.returncode}")
        rows.append(
            {
                "part": index,
                "wall_s": round(time.perf_counter() - started, 2),
                "peak_rss_mb": round(rss.stop() / 1e3, 1),  # VmHWM, KiB
                "peak_disk_mb": round(disk.stop() / 1e6, 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return sorted(rows, key=lambda r: r["part"])


def task_stats(fs: Any, dest_path: str) -> list[dict[str, Any]]:
    folder = f"{dest_path}/_lerobot_wds_work/datatrove/stats"
    return [json.loads(fs.cat_file(name))[0]["stats"] for name in sorted(fs.ls(folder, detail=False))]


def stream(dest: str, options: dict[str, Any], num_items: int, shard_bytes: int) -> dict[str, Any]:
    """``verify`` (every byte) and the first ``num_items`` decoded items of the dataset, from the bucket."""
    from lerobot_wds import ShardedLeRobotDataset, verify

    started = time.perf_counter()
    report = verify(dest, storage_options=options)
    verify_s = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"{dest}: verify failed: {report}")
    dataset = ShardedLeRobotDataset(dest, storage_options=options)
    started = time.perf_counter()
    for count, _ in enumerate(dataset, start=1):
        if count == num_items:
            break
    items_s = time.perf_counter() - started
    return {
        "verify_s": round(verify_s, 2),
        "verified_mb": round(shard_bytes / 1e6, 1),
        "verify_mb_per_s": round(shard_bytes / 1e6 / verify_s, 1),
        "items": num_items,
        "items_per_s": round(num_items / items_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="a local LeRobot v3 folder to upload")
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2, help="parts running at once (2 cores here)")
    parser.add_argument("--shard-size-mb", type=float, default=16.0)
    parser.add_argument("--items", type=int, default=2000, help="decoded items streamed at the end")
    parser.add_argument("--machines", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/droid_rehearsal.json")
    args = parser.parse_args()
    import s3fs
    from s3server import seaweedfs

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="rehearse-droid-") as tmp:
        work = Path(tmp)
        (work / "weed").mkdir()
        with seaweedfs(work / "weed") as options:
            fs = s3fs.S3FileSystem(**options)
            fs.mkdir("source")
            fs.mkdir("dest")
            fs.put(str(args.source), "source/droid-shaped", recursive=True)
            src, dest = "s3://source/droid-shaped", "s3://dest/droid-shaped-wds"
            source_bytes = sum(int(i["size"]) for i in fs.find("source/droid-shaped", detail=True).values())
            media_bytes = sum(
                int(i["size"])
                for p in ("data", "videos")
                for i in fs.find(f"source/droid-shaped/{p}", detail=True).values()
            )
            env = {
                **os.environ,
                "AWS_ACCESS_KEY_ID": options["key"],
                "AWS_SECRET_ACCESS_KEY": options["secret"],
                "AWS_ENDPOINT_URL": options["client_kwargs"]["endpoint_url"],
            }
            started = time.perf_counter()
            parts = run_parts(args, src, dest, env, work)
            parts_s = time.perf_counter() - started
            stats = task_stats(fs, "dest/droid-shaped-wds")
            subprocess.run([*CLI, "finalize", dest], env=env, check=True, stdout=subprocess.DEVNULL)
            convert_s = time.perf_counter() - started
            read_bytes = sum(s["source_downloaded_bytes"]["total"] for s in stats)
            written = sum(int(i["size"]) for i in fs.find("dest/droid-shaped-wds", detail=True).values())
            manifest = json.loads(fs.cat_file("dest/droid-shaped-wds/manifest.json"))
            shard_bytes = sum(shard["size_bytes"] for shard in manifest["shards"])
            files = {p: len(fs.find(f"source/droid-shaped/{p}")) for p in ("data", "videos")}
            streamed = stream(dest, options, args.items, shard_bytes)
    # Throughput of one part (one machine with this machine's share of cores) on the source's media bytes
    per_part_bytes_per_s = media_bytes / args.parts / (sum(p["wall_s"] for p in parts) / len(parts))
    record = {
        "source": {
            "episodes": len(manifest["episodes"]["episode_index"]),
            "cameras": len(manifest["camera_keys"]),
            "source_mb": round(source_bytes / 1e6, 1),
            "media_mb": round(media_bytes / 1e6, 1),
            "data_files": files["data"],
            "video_files": files["videos"],
        },
        "parts": args.parts,
        "parallel": args.parallel,
        "shard_size_mb": args.shard_size_mb,
        "shards": len(manifest["shards"]),
        "per_part": parts,
        "parts_wall_s": round(parts_s, 2),
        "convert_wall_s": round(convert_s, 2),
        "read_mb": round(read_bytes / 1e6, 1),
        "read_vs_media": round(read_bytes / media_bytes, 3),
        "written_mb": round(written / 1e6, 1),
        "wall_s_per_gb": round(convert_s / (media_bytes / 1e9), 1),
        "per_part_mb_per_s": round(per_part_bytes_per_s / 1e6, 2),
        "streamed": streamed,
        "droid_projection_h": {
            str(n): round(DROID_BYTES / (per_part_bytes_per_s * n) / 3600, 1) for n in args.machines
        },
        "load_avg_before_after": [round(v, 2) for v in (*load_before, *os.getloadavg())],
    }
    write_record(args.out.resolve(), record)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
