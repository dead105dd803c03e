"""Reader throughput, peak RSS and batch diversity, side by side with LeRobot and a decode limit.

    python scripts/bench_read.py [--datasets bench multi] [--lerobot-venv /tmp/lerobot-venv]

Workload (the reader issue's): batch 32, `delta_timestamps = {action: 16 steps, first camera:
[-1/fps, 0]}`, other cameras at the current frame; 5 warm-up batches, then 40 timed batches; every
measurement `--repeats` times (2), in rounds over all of them, the fastest kept.
Every measurement runs in a fresh child process so that peak RSS (whole process tree, sampled every
20 ms) belongs to that configuration alone. In the same run:

- ours: `ShardedLeRobotDataset` + `torch.utils.data.DataLoader`, num_workers 0 and 2;
- decode limit: torchcodec alone decoding the same frames (random sample order, reused decoders,
  seek_mode exact) from the source mp4s, in 1 and 2 processes, no Python pipeline around it;
- LeRobot 0.6.1 map-style `LeRobotDataset` + DataLoader(shuffle=True), if `--lerobot-venv` is given
  (build it with `bash ../shared/tools/lerobot-venv/setup.sh /tmp/lerobot-venv`).

Results go to benchmarks/results/read.json. The machines are shared and noisy: compare only ratios
measured in one run. `scripts/bench_sweep.py` reuses the children here for the cost curve of
`episode_pool_size` and the action window length.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures"
BATCH_SIZE = 32
WARMUP_BATCHES = 5
ACTION_STEPS = 16  # the reader issue's workload: 16 future actions per sample


class PeakRss:
    """Samples the RSS of this process and all its descendants every 20 ms."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        total = 0
        for process in [self._process, *self._process.children(recursive=True)]:
            with contextlib.suppress(Exception):  # a worker that just exited
                total += process.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_bytes = max(self.peak_bytes, self._sample())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_bytes


def delta_timestamps(
    fps: int, camera_keys: list[str], action_steps: int = ACTION_STEPS
) -> dict[str, list[float]]:
    return {"action": [i / fps for i in range(action_steps)], camera_keys[0]: [-1 / fps, 0.0]}


def time_batches(batches: Any, num_batches: int) -> dict[str, Any]:
    """Consume warm-up + timed batches; samples/s over the timed ones, distinct episodes per batch."""
    iterator = iter(batches)
    for _ in range(WARMUP_BATCHES):
        next(iterator)
    distinct = []
    started = time.perf_counter()
    for _ in range(num_batches):
        batch = next(iterator)
        distinct.append(len(set(batch["episode_index"].tolist())))
    elapsed = time.perf_counter() - started
    return {
        "samples_per_s": round(num_batches * BATCH_SIZE / elapsed, 1),
        "distinct_episodes_per_batch": round(sum(distinct) / len(distinct), 1),
    }


# ------------------------------------------------------------------------------------- children


# Reader variants measured side by side: the defaults (LeRobot's semantics: frames of an episode in
# random order, float32 frames), then the two levers of the performance issue.
VARIANTS: dict[str, dict[str, Any]] = {
    "ours": {},
    "ours_forward": {"frame_order": "forward"},
    "ours_forward_uint8": {"frame_order": "forward", "return_uint8": True},
    # batches built by the dataset (frames decoded into the batch), DataLoader(batch_size=None)
    "ours_batched": {"batch_size": BATCH_SIZE},
    "ours_forward_uint8_batched": {"frame_order": "forward", "return_uint8": True, "batch_size": BATCH_SIZE},
    # the fast path: + frames laid out as decoded (channels_last), copied with memcpy
    "ours_fast": {
        "frame_order": "forward",
        "return_uint8": True,
        "batch_size": BATCH_SIZE,
        "channels_last": True,
    },
}


def child_ours(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from lerobot_wds import ShardedLeRobotDataset

    rss = PeakRss()
    probe = ShardedLeRobotDataset(args.url)
    options = dict(VARIANTS[args.variant])
    if args.episode_pool_size is not None:  # otherwise the library default
        options["episode_pool_size"] = args.episode_pool_size
    dataset = ShardedLeRobotDataset(
        args.url,
        delta_timestamps=delta_timestamps(probe.fps, probe.camera_keys, args.action_steps),
        seed=args.seed,
        **options,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None if "batch_size" in options else BATCH_SIZE,
        num_workers=args.workers,
        persistent_workers=False,
    )
    result = time_batches(loader, args.batches)
    return result | {"peak_rss_mb": round(rss.stop() / 1e6)}


def child_lerobot(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import torchvision_shim  # noqa: F401  (the lerobot venv's CPU torchvision stand-in)
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    rss = PeakRss()
    info = json.loads((Path(args.source) / "meta/info.json").read_text())
    cameras = [k for k, v in info["features"].items() if v["dtype"] == "video"]
    dataset = LeRobotDataset(
        f"local/{Path(args.source).name}",
        root=args.source,
        delta_timestamps=delta_timestamps(info["fps"], cameras),
        video_backend="torchcodec",
    )
    generator = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=args.workers, generator=generator
    )
    result = time_batches(loader, args.batches)
    return result | {"peak_rss_mb": round(rss.stop() / 1e6)}


def _decode_limit_worker(source: str, indices: list[int], out: Any, ffmpeg_threads: int = 1) -> None:
    """torchcodec alone: for each sample, the first camera's 2-frame window and the others' frame."""
    import pyarrow.parquet as pq
    from torchcodec.decoders import VideoDecoder

    root = Path(source)
    info = json.loads((root / "meta/info.json").read_text())
    fps, cameras = info["fps"], [k for k, v in info["features"].items() if v["dtype"] == "video"]
    episodes = pq.read_table(root / "meta/episodes").to_pylist()
    decoders: dict[str, VideoDecoder] = {}
    by_index = []
    for ep in episodes:
        for frame in range(ep["length"]):
            by_index.append((ep, frame))
    started = time.perf_counter()
    for index in indices:
        ep, frame = by_index[index]
        for number, camera in enumerate(cameras):
            path = str(
                root
                / info["video_path"].format(
                    video_key=camera,
                    chunk_index=ep[f"videos/{camera}/chunk_index"],
                    file_index=ep[f"videos/{camera}/file_index"],
                )
            )
            decoder = decoders.get(path) or decoders.setdefault(
                path, VideoDecoder(path, seek_mode="exact", num_ffmpeg_threads=ffmpeg_threads)
            )
            first = round(ep[f"videos/{camera}/from_timestamp"] * fps)
            window = [max(frame - 1, 0), frame] if number == 0 else [frame]
            decoder.get_frames_at([first + f for f in window])
    out.put(time.perf_counter() - started)


def child_decode_limit(args: argparse.Namespace) -> dict[str, Any]:
    import multiprocessing as mp
    import random

    info = json.loads((Path(args.source) / "meta/info.json").read_text())
    order = list(range(info["total_frames"]))
    random.Random(args.seed).shuffle(order)
    num_samples = (args.batches + WARMUP_BATCHES) * BATCH_SIZE
    order = (order * (num_samples // len(order) + 1))[:num_samples]
    processes = max(args.workers, 1)
    rss = PeakRss()
    queue: Any = mp.get_context("spawn").Queue()
    parts = [order[i::processes] for i in range(processes)]
    procs = [
        mp.get_context("spawn").Process(
            target=_decode_limit_worker, args=(args.source, part, queue, args.ffmpeg_threads)
        )
        for part in parts
    ]
    for p in procs:
        p.start()
    seconds = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return {"samples_per_s": round(num_samples / max(seconds), 1), "peak_rss_mb": round(rss.stop() / 1e6)}


CHILDREN = {"ours": child_ours, "lerobot": child_lerobot, "decode_limit": child_decode_limit}


# ----------------------------------------------------------------------------------------- parent


def run_child(python: str, kind: str, **options: Any) -> dict[str, Any]:
    command = [python, __file__, "--child", kind]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if completed.returncode != 0:
        return {"error": completed.stderr.strip().splitlines()[-1:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def ratios(row: dict[str, Any], variant: str) -> dict[str, float]:
    ours = row[variant].get("samples_per_s", 0.0)
    out = {
        f"{variant}_vs_decode_limit": round(ours / row["decode_limit"].get("samples_per_s", float("inf")), 2)
    }
    lerobot = row.get("lerobot", {})
    if "samples_per_s" in lerobot:
        out[f"{variant}_vs_lerobot"] = round(ours / lerobot["samples_per_s"], 2)
        out[f"{variant}_rss_vs_lerobot"] = round(
            row[variant].get("peak_rss_mb", 0) / lerobot["peak_rss_mb"], 2
        )
    return out


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}


def write_results(out: Path, rows: list[dict[str, Any]], **fields: Any) -> None:
    """One results file: the command that made it, the machine, the workload `fields`, the rows."""
    script = Path(sys.argv[0]).resolve()
    script_name = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    command = " ".join(["python", str(script_name), *sys.argv[1:]])
    record = {"command": command, "machine": machine(), **fields, "results": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


def dataset_info(url: str) -> dict[str, Any]:
    """What a plot or table needs to name a converted dataset: size, fps and camera resolution."""
    from lerobot_wds.format import read_manifest

    manifest = read_manifest(url)
    cameras = [manifest.features[key]["info"] for key in manifest.camera_keys]
    shapes = {f"{camera['video.height']}x{camera['video.width']}" for camera in cameras}
    return {
        "num_episodes": manifest.num_episodes,
        "num_frames": manifest.num_frames,
        "fps": manifest.fps,
        "num_cameras": len(manifest.camera_keys),
        "resolution": "/".join(sorted(shapes)),
    }


def convert_once(name: str) -> str:
    from lerobot_wds import ConvertConfig, convert

    dest = ROOT / "out" / "bench" / name
    convert(str(FIXTURES / name), str(dest), ConvertConfig())
    return str(dest)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["bench", "multi"])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2, help="rounds of every measurement; best kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lerobot-venv", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/read.json")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="ours", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--episode-pool-size", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--action-steps", type=int, default=ACTION_STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--ffmpeg-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.workers = args.workers[0]
        print(json.dumps(CHILDREN[args.child](args)))
        return
    rows = []
    for name in args.datasets:
        url, source = convert_once(name), str(FIXTURES / name)
        info = dataset_info(url)
        for workers in args.workers:
            common = {"workers": workers, "batches": args.batches, "seed": args.seed}
            row: dict[str, Any] = {"dataset": name, **info, "num_workers": workers}
            children: dict[str, tuple[str, str, dict[str, Any]]] = {
                variant: (sys.executable, "ours", {"url": url, "variant": variant}) for variant in VARIANTS
            }
            children["decode_limit"] = (sys.executable, "decode_limit", {"source": source})
            if args.lerobot_venv:
                children["lerobot"] = (str(args.lerobot_venv / "bin/python"), "lerobot", {"source": source})
            # Rounds over every measurement, the best round kept: a shared machine's slow spells then
            # fall on single runs, not on whole variants.
            for _ in range(args.repeats):
                for key, (python, kind, options) in children.items():
                    result = run_child(python, kind, **options, **common)
                    best = row.get(key, {}).get("samples_per_s", -1.0)
                    if key not in row or result.get("samples_per_s", -1.0) > best:
                        row[key] = result
            for variant in VARIANTS:
                row.update(ratios(row, variant))
            print(json.dumps(row))
            rows.append(row)
    write_results(
        args.out, rows, batch_size=BATCH_SIZE, warmup_batches=WARMUP_BATCHES, batches=args.batches,
        repeats=args.repeats,
    )  # fmt: skip


if __name__ == "__main__":
    main()
