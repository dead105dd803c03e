"""Reader throughput, peak RSS and batch diversity, side by side with LeRobot and two decode limits.

    python scripts/bench_read.py [--datasets g1 bench multi] [--workers 0 2] [--repeats 2]
                                 [--lerobot-venv /tmp/lerobot-venv]

Workload: batch 32, `delta_timestamps = {action: 16 steps, first camera: [-1/fps, 0]}`, other cameras
at the current frame; 5 warm-up batches, then 40 timed batches; every measurement `--repeats` times
(2), in rounds over all of them, the fastest kept. `g1` (../shared/fixtures/g1: a real robot's
480x640 AV1 camera) comes first; fixtures are converted into out/bench/<name> when first needed.
Every measurement runs in a fresh child process so that peak RSS (whole process tree, sampled every
20 ms) belongs to that configuration alone. Rows, per dataset and per `num_workers`:

- LeRobot 0.6.1 map-style `LeRobotDataset` + DataLoader(batch_size=32, shuffle=True), float32 frames
  (its default) and `return_uint8=True` (what lerobot-train uses), if `--lerobot-venv` is given (build
  it with `bash ../shared/tools/lerobot-venv/setup.sh /tmp/lerobot-venv`);
- random-window limit: torchcodec alone (seek_mode exact, 1 FFmpeg thread, decoders opened before
  the clock starts) decoding each sample's windows from the source mp4s, for the samples LeRobot's
  shuffled DataLoader draws (same sampler, same seed: same order), batch b in process b % P,
  P = max(1, num_workers) processes, no Python pipeline around it;
- sequential decode bound: torchcodec alone (1 FFmpeg thread) decoding the episodes' segments front to
  back (`get_frames_in_range`, <= 32 frames per call), one new frame per camera per sample, in P
  processes that each own a contiguous 1/P of the frames; samples/s (= frames/s per camera);
- ours, the rows of VARIANTS below (`ShardedLeRobotDataset` + `torch.utils.data.DataLoader`).

Ratios from the same run are in each row's "ratios": every row of ours against its LeRobot peer
(samples/s and peak RSS) and against its limit (see VARIANTS). Results go to
benchmarks/results/read.json. The machines are shared and noisy: compare only ratios measured in one
run. `scripts/bench_sweep.py` reuses the children here for the cost curve of `episode_pool_size` and
the action window length; `scripts/bench_threads.py` the random-window limit (`decode_limit`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchenv import write_record

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures"
BATCH_SIZE = 32
WARMUP_BATCHES = 5
ACTION_STEPS = 16  # the reader issue's workload: 16 future actions per sample
SEQUENTIAL_CHUNK = 32  # frames per get_frames_in_range call of the sequential bound


@dataclass(frozen=True)
class Variant:
    """One row of ours: the dataset's keyword arguments and how the DataLoader batches them."""

    label: str
    reader: dict[str, Any]  # ShardedLeRobotDataset(url, delta_timestamps=..., seed=..., **reader)
    loader_batch_size: int | None  # DataLoader(batch_size=...): None when the dataset builds batches
    peer: str  # the LeRobot row with the same frame dtype: ratios of samples/s and peak RSS
    limit: str  # the decode limit it is compared with
    note: str = field(default="", compare=False)
    # DataLoader(collate_fn=default_collate of plain dicts): torch's own collate, a fresh shared-memory
    # buffer per tensor (our items' type otherwise routes them to lerobot_wds.collate: one recycled buffer)
    plain_dicts: bool = False


# The rows of ours, in output order. A preset replaces a row's `reader` dict in one line, e.g.
# "fast": Variant("fast", {"preset": "fast"}, None, ...). DEFAULT_VARIANTS are measured unless
# `--variants` names others; the rest are the levers one at a time (cheap to keep, off by default).
VARIANTS: dict[str, Variant] = {
    "drop_in": Variant(
        "drop-in", {"return_uint8": True, "frame_order": "shuffled"}, BATCH_SIZE,
        "lerobot_uint8", "random_window_limit",
        "lerobot-train's uint8 frames, LeRobot's shuffled order, a plain DataLoader (no collate_fn)",
    ),
    "defaults": Variant(
        "defaults", {"return_uint8": False, "frame_order": "shuffled"}, BATCH_SIZE,
        "lerobot_float32", "random_window_limit",
        "LeRobot's semantics: float32 frames, shuffled order, a plain DataLoader (no collate_fn)",
    ),
    "defaults_torch_collate": Variant(
        "defaults, torch's collate", {"return_uint8": False, "frame_order": "shuffled"}, BATCH_SIZE,
        "lerobot_float32", "random_window_limit",
        "defaults batched by torch's own default_collate (items as plain dicts): what lerobot_wds.Item's "
        "registered collate replaces",
        plain_dicts=True,
    ),
    "fast": Variant(
        "fast", {"preset": "fast", "batch_size": BATCH_SIZE}, None, "lerobot_uint8", "sequential_bound",
        "preset='fast' (forward, uint8, channels_last), batches built by the dataset",
    ),
    "forward": Variant(
        "forward", {"frame_order": "forward"}, BATCH_SIZE, "lerobot_float32", "sequential_bound"
    ),
    "forward_uint8": Variant(
        "forward uint8", {"frame_order": "forward", "return_uint8": True}, BATCH_SIZE,
        "lerobot_uint8", "sequential_bound",
    ),
    "batched": Variant(
        "batched", {"batch_size": BATCH_SIZE}, None, "lerobot_float32", "random_window_limit"
    ),
    "forward_uint8_batched": Variant(
        "forward uint8 batched", {"frame_order": "forward", "return_uint8": True, "batch_size": BATCH_SIZE},
        None, "lerobot_uint8", "sequential_bound",
    ),
}  # fmt: skip
DEFAULT_VARIANTS = ("drop_in", "defaults", "fast")
# LeRobot 0.6.1 rows: LeRobotDataset keyword arguments besides delta_timestamps and the video backend.
LEROBOT = {"lerobot_float32": {"return_uint8": False}, "lerobot_uint8": {"return_uint8": True}}
LIMITS = {
    "random_window_limit": "torchcodec alone, the same windows in the same random order as a shuffled "
    "DataLoader, seek_mode exact, 1 FFmpeg thread, max(1, workers) processes",
    "sequential_bound": "torchcodec alone, the same segments front to back, one new frame per camera "
    "per sample, 1 FFmpeg thread, max(1, workers) processes",
}


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


def plain_default_collate(items: list[dict[str, Any]]) -> Any:
    """torch's own ``default_collate`` (items as plain dicts, so their type does not pick our collate)."""
    from torch.utils.data import default_collate

    return default_collate([dict(item) for item in items])


def child_ours(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from lerobot_wds import ShardedLeRobotDataset

    rss = PeakRss()
    probe = ShardedLeRobotDataset(args.url)
    variant = VARIANTS[args.variant]
    options = dict(variant.reader)
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
        batch_size=variant.loader_batch_size,
        num_workers=args.workers,
        persistent_workers=False,
        **({"collate_fn": plain_default_collate} if variant.plain_dicts else {}),
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
        return_uint8=bool(args.return_uint8),
    )
    generator = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=args.workers, generator=generator
    )
    result = time_batches(loader, args.batches)
    return result | {"peak_rss_mb": round(rss.stop() / 1e6)}


class SourceVideos:
    """A LeRobot v3 folder's frames by global index: episode, frame, and per camera mp4 + first frame."""

    def __init__(self, source: str) -> None:
        import pyarrow.parquet as pq

        root = Path(source)
        info = json.loads((root / "meta/info.json").read_text())
        self.fps = info["fps"]
        self.cameras = [k for k, v in info["features"].items() if v["dtype"] == "video"]
        episodes = sorted(pq.read_table(root / "meta/episodes").to_pylist(), key=lambda e: e["episode_index"])
        self.episodes = [
            {
                "length": ep["length"],
                "videos": [
                    (
                        str(
                            root
                            / info["video_path"].format(
                                video_key=camera,
                                chunk_index=ep[f"videos/{camera}/chunk_index"],
                                file_index=ep[f"videos/{camera}/file_index"],
                            )
                        ),
                        round(ep[f"videos/{camera}/from_timestamp"] * self.fps),
                    )
                    for camera in self.cameras
                ],
            }
            for ep in episodes
        ]
        self.by_index = [(e, f) for e, ep in enumerate(self.episodes) for f in range(ep["length"])]

    def paths(self, indices: list[int]) -> list[str]:
        return sorted({path for i in indices for path, _ in self.episodes[self.by_index[i][0]]["videos"]})


def _open_decoders(videos: SourceVideos, indices: list[int], seek_mode: str, threads: int) -> dict[str, Any]:
    from torchcodec.decoders import VideoDecoder

    return {
        path: VideoDecoder(path, seek_mode=seek_mode, num_ffmpeg_threads=threads)
        for path in videos.paths(indices)
    }


def _random_window_worker(
    source: str, warmup: list[int], timed: list[int], start: Any, out: Any, ffmpeg_threads: int = 1
) -> None:
    """For each sample: the first camera's 2-frame window, the other cameras' current frame."""
    videos = SourceVideos(source)
    decoders = _open_decoders(videos, warmup + timed, "exact", ffmpeg_threads)

    def decode(indices: list[int]) -> None:
        for index in indices:
            episode, frame = videos.by_index[index]
            for number, (path, first) in enumerate(videos.episodes[episode]["videos"]):
                window = [max(frame - 1, 0), frame] if number == 0 else [frame]
                decoders[path].get_frames_at([first + f for f in window])

    decode(warmup)
    start.wait()
    started = time.perf_counter()
    decode(timed)
    out.put(time.perf_counter() - started)


def _sequential_worker(source: str, warmup: list[int], timed: list[int], start: Any, out: Any) -> None:
    """Front to back: runs of consecutive frames of one episode, <= SEQUENTIAL_CHUNK per call."""
    videos = SourceVideos(source)
    decoders = _open_decoders(videos, warmup + timed, "exact", 1)

    def runs(indices: list[int]) -> list[tuple[int, int, int]]:
        out: list[tuple[int, int, int]] = []  # (episode, first frame, stop frame)
        for index in indices:
            episode, frame = videos.by_index[index]
            last = out[-1] if out else (-1, 0, -1)
            if last[0] == episode and last[2] == frame and frame - last[1] < SEQUENTIAL_CHUNK:
                out[-1] = (episode, last[1], frame + 1)
            else:
                out.append((episode, frame, frame + 1))
        return out

    def decode(indices: list[int]) -> None:
        for episode, begin, stop in runs(indices):
            for path, first in videos.episodes[episode]["videos"]:
                decoders[path].get_frames_in_range(first + begin, first + stop)

    decode(warmup)
    start.wait()
    started = time.perf_counter()
    decode(timed)
    out.put(time.perf_counter() - started)


def _run_decoders(target: Any, source: str, jobs: list[tuple[list[int], list[int]]], *extra: Any) -> float:
    """One spawned process per (warm-up, timed) job, the clock started together: the slowest's seconds."""
    import multiprocessing as mp
    import queue as queues

    context = mp.get_context("spawn")
    out: Any = context.Queue()
    start = context.Barrier(len(jobs))
    procs = [context.Process(target=target, args=(source, *job, start, out, *extra)) for job in jobs]
    for p in procs:
        p.start()
    seconds: list[float] = []
    while len(seconds) < len(procs):
        with contextlib.suppress(queues.Empty):
            seconds.append(out.get(timeout=1.0))
            continue
        if any(p.exitcode not in (None, 0) for p in procs):  # a decoder died: no result will come
            for p in procs:
                p.kill()
            raise RuntimeError(f"decoder process failed: exit codes {[p.exitcode for p in procs]}")
    for p in procs:
        p.join()
    return max(seconds)


def child_random_window_limit(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    info = json.loads((Path(args.source) / "meta/info.json").read_text())
    # The samples a shuffled DataLoader draws (LeRobot's sampler and seed: the same order), batch b
    # decoded by process b % P as DataLoader workers would.
    sampler = torch.utils.data.DataLoader(
        range(info["total_frames"]), batch_size=BATCH_SIZE, shuffle=True,
        generator=torch.Generator().manual_seed(args.seed),
    )  # fmt: skip
    batches = []
    while len(batches) < WARMUP_BATCHES + args.batches:
        batches += [batch.tolist() for batch in sampler]
    batches = batches[: WARMUP_BATCHES + args.batches]
    processes = max(args.workers, 1)

    def samples(part: list[list[int]], p: int) -> list[int]:
        return [i for b, batch in enumerate(part) if b % processes == p for i in batch]

    # Warm-up batches 0..4 and timed batches 5.. keep their global numbers, hence their process.
    jobs = [
        (samples(batches[:WARMUP_BATCHES], p), samples([[]] * WARMUP_BATCHES + batches[WARMUP_BATCHES:], p))
        for p in range(processes)
    ]
    rss = PeakRss()
    seconds = _run_decoders(_random_window_worker, args.source, jobs, args.ffmpeg_threads)
    timed = args.batches * BATCH_SIZE
    return {"samples_per_s": round(timed / seconds, 1), "peak_rss_mb": round(rss.stop() / 1e6)}


def child_sequential_bound(args: argparse.Namespace) -> dict[str, Any]:
    videos = SourceVideos(args.source)
    processes = max(args.workers, 1)
    total = len(videos.by_index)
    warmup, timed = WARMUP_BATCHES * BATCH_SIZE, args.batches * BATCH_SIZE
    jobs = []
    for p in range(processes):
        part = list(range(p * total // processes, (p + 1) * total // processes))
        warm_p = warmup // processes + (p < warmup % processes)
        timed_p = timed // processes + (p < timed % processes)
        frames = (part * ((warm_p + timed_p) // len(part) + 1))[: warm_p + timed_p]  # wraps if short
        jobs.append((frames[:warm_p], frames[warm_p:]))
    rss = PeakRss()
    seconds = _run_decoders(_sequential_worker, args.source, jobs)
    return {
        "samples_per_s": round(timed / seconds, 1),
        "frames_per_s": round(timed * len(videos.cameras) / seconds, 1),
        "peak_rss_mb": round(rss.stop() / 1e6),
    }


CHILDREN = {
    "ours": child_ours,
    "lerobot": child_lerobot,
    "random_window_limit": child_random_window_limit,
    "decode_limit": child_random_window_limit,  # its name before g1 (bench_threads.py)
    "sequential_bound": child_sequential_bound,
}


# ----------------------------------------------------------------------------------------- parent


def run_child(python: str, kind: str, **options: Any) -> dict[str, Any]:
    command = [python, __file__, "--child", kind]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if completed.returncode != 0:
        return {"error": completed.stderr.strip().splitlines()[-1:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def ratio(row: dict[str, Any], numerator: str, denominator: str, metric: str) -> float | None:
    top, bottom = row.get(numerator, {}).get(metric), row.get(denominator, {}).get(metric)
    return round(top / bottom, 2) if top and bottom else None


def ratios(row: dict[str, Any], variants: list[str]) -> dict[str, float | None]:
    """Each row of ours against its LeRobot peer (samples/s, peak RSS) and its decode limit."""
    out: dict[str, float | None] = {}
    for name in variants:
        variant = VARIANTS[name]
        if variant.peer in row:
            out[f"{name}_vs_{variant.peer}"] = ratio(row, name, variant.peer, "samples_per_s")
            out[f"{name}_rss_vs_{variant.peer}"] = ratio(row, name, variant.peer, "peak_rss_mb")
        out[f"{name}_vs_{variant.limit}"] = ratio(row, name, variant.limit, "samples_per_s")
    return out


def write_results(out: Path, rows: list[dict[str, Any]], **fields: Any) -> None:
    """One results file: the command that made it, the machine (benchenv), the workload `fields`, the rows."""
    write_record(out.resolve(), {**fields, "results": rows})


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
    """Converts a fixture into out/bench/<name> (a finished conversion is only checked, not redone)."""
    from lerobot_wds import ConvertConfig, convert

    dest = ROOT / "out" / "bench" / name
    convert(str(FIXTURES / name), str(dest), ConvertConfig())
    return str(dest)


def measurement_arguments(parser: argparse.ArgumentParser, *, datasets: list[str], out: Path) -> None:
    """The options of a read measurement run (this script's and bench_stacks.py's)."""
    parser.add_argument("--datasets", nargs="+", default=datasets)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2, help="rounds of every measurement; best kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lerobot-venv", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    measurement_arguments(
        parser, datasets=["g1", "bench", "multi"], out=ROOT / "benchmarks/results/read.json"
    )
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="defaults", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--episode-pool-size", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--action-steps", type=int, default=ACTION_STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--ffmpeg-threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--return-uint8", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.workers = args.workers[0]
        print(json.dumps(CHILDREN[args.child](args)))
        return
    started = time.perf_counter()
    rows = []
    for name in args.datasets:
        url, source = convert_once(name), str(FIXTURES / name)
        info = dataset_info(url)
        for workers in args.workers:
            common = {"workers": workers, "batches": args.batches, "seed": args.seed}
            row: dict[str, Any] = {"dataset": name, **info, "num_workers": workers}
            children: dict[str, tuple[str, str, dict[str, Any]]] = {}
            if args.lerobot_venv:
                python = str(args.lerobot_venv / "bin/python")
                for key, options in LEROBOT.items():
                    flags = {"source": source, "return_uint8": int(options["return_uint8"])}
                    children[key] = (python, "lerobot", flags)
            for limit in LIMITS:
                children[limit] = (sys.executable, limit, {"source": source})
            for variant in args.variants:
                children[variant] = (sys.executable, "ours", {"url": url, "variant": variant})
            # Rounds over every measurement, the best round kept: a shared machine's slow spells then
            # fall on single runs, not on whole rows.
            for _ in range(args.repeats):
                for key, (python, kind, options) in children.items():
                    result = run_child(python, kind, **options, **common)
                    print(f"  {name} w{workers} {key}: {result}", file=sys.stderr, flush=True)
                    best = row.get(key, {}).get("samples_per_s", -1.0)
                    if key not in row or result.get("samples_per_s", -1.0) > best:
                        row[key] = result
            row["ratios"] = ratios(row, args.variants)
            print(json.dumps(row), flush=True)
            rows.append(row)
    write_results(
        args.out, rows, batch_size=BATCH_SIZE, warmup_batches=WARMUP_BATCHES, batches=args.batches,
        repeats=args.repeats, action_steps=ACTION_STEPS,
        variants={name: asdict(VARIANTS[name]) for name in args.variants},
        lerobot=LEROBOT if args.lerobot_venv else {}, limits=LIMITS,
        elapsed_s=round(time.perf_counter() - started),
    )  # fmt: skip


if __name__ == "__main__":
    main()
