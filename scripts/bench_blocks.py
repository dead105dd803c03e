"""torchcodec 0.17's low-level blocks against its VideoDecoder on the reader's two access patterns.

    python scripts/bench_blocks.py [--stack NAME=PYTHON ...] [--datasets g1] [--frames 600] [--repeats 3]

On one segment-sized stretch of each dataset's first camera (its first episodes, `--frames` frames),
in one process per measurement, under each `--stack` (default: this interpreter), the best of `--repeats`:

- `decoder_forward`: `VideoDecoder(seek_mode="exact").get_frames_in_range`, 32 frames per call (the
  sequential decode bound of bench_read.py);
- `decoder_random_pairs`: `VideoDecoder.get_frames_at([f-1, f])` at shuffled f (the random-window limit);
- `blocks_forward` (torchcodec >= 0.17): `Demuxer` -> `VideoPacketDecoder` -> `ColorConverter` in one
  thread, every frame;
- `blocks_forward_2_threads` (>= 0.17): the same with colour conversion on a second thread (the blocks
  release the GIL, so demux+decode and conversion overlap on two cores);
- `import_rss_mb`: RSS added by `import torch`, then by importing torchcodec's decoder (as the reader
  does; and that import's seconds), then by opening one decoder and decoding 3 frames - what each
  DataLoader worker pays;
- `blocks_equal`: whether the blocks' frames equal `VideoDecoder`'s (the first 40 frames and 40 from the
  middle), so the blocks rows measure the same output;
- `scan_ms` (>= 0.17): `VideoStream.scan()` of the whole source mp4 against `converter/probe.py`'s two
  ways to the converter's frame counts and keyframes: PyAV's container index, and the PyAV demux it
  falls back to when a stream reorders frames.

Frames/s per measurement; results to benchmarks/results/blocks.json through benchenv, with each stack's
versions.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench_read import FIXTURES, ROOT, SourceVideos
from bench_stacks import parse_stack, stack_versions
from benchenv import write_record

CHUNK = 32  # frames per get_frames_in_range call, as bench_read.SEQUENTIAL_CHUNK


def decoder_forward(path: str, first: int, count: int) -> int:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(path, seek_mode="exact", num_ffmpeg_threads=1)
    for start in range(first, first + count, CHUNK):
        decoder.get_frames_in_range(start, min(start + CHUNK, first + count))
    return count


def decoder_random_pairs(path: str, first: int, count: int) -> int:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(path, seek_mode="exact", num_ffmpeg_threads=1)
    targets = np.random.default_rng(0).permutation(np.arange(first + 1, first + count))[: count // 2]
    for frame in targets.tolist():
        decoder.get_frames_at([frame - 1, frame])
    return 2 * len(targets)


def _raw_frames(path: str, first: int, count: int) -> Any:
    """The decoded (not colour-converted) frames first..first+count of the first video stream."""
    from torchcodec.decoders import Demuxer

    demuxer = Demuxer(path)
    stream = demuxer.streams[0]
    index = stream.scan()
    target = float(index.pts_seconds[first])
    demuxer.seek(index.key_frame_seconds_for(target))
    decoder = stream.make_decoder(device="cpu", num_ffmpeg_threads=1)

    def decoded() -> Any:
        for packet in demuxer:
            yield from decoder.decode(packet)
        yield from decoder.drain()  # the frames a codec still holds at the end of the file

    made = 0
    for raw in decoded():
        if raw.pts_seconds >= target:
            yield raw
            made += 1
            if made == count:
                return


def blocks_forward(path: str, first: int, count: int) -> int:
    from torchcodec.decoders import ColorConverter

    converter = ColorConverter(device="cpu")
    return sum(1 for raw in _raw_frames(path, first, count) if converter.convert(raw).data is not None)


def blocks_forward_2_threads(path: str, first: int, count: int) -> int:
    from torchcodec.decoders import ColorConverter

    converter = ColorConverter(device="cpu")
    frames: queue.Queue[Any] = queue.Queue(maxsize=8)
    converted = [0]

    def convert() -> None:
        while (raw := frames.get()) is not None:
            converter.convert(raw)
            converted[0] += 1

    worker = threading.Thread(target=convert)
    worker.start()
    for raw in _raw_frames(path, first, count):
        frames.put(raw)
    frames.put(None)
    worker.join()
    return converted[0]


def scan_ms(path: str, first: int, count: int) -> dict[str, float]:
    """Milliseconds, best of 5 each: torchcodec's scan of the whole file; the probe's container index; the
    probe's fallback for streams that reorder frames (a PyAV demux of every packet, no decoding)."""
    import av
    from torchcodec.decoders import Demuxer

    from lerobot_wds.converter.probe import _demuxed, index_stream

    def demux() -> None:
        with av.open(path) as container:
            _demuxed(container, container.streams.video[0])

    def best(fn: Callable[[], Any]) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return round(min(times) * 1e3, 2)

    return {
        "scan_ms": best(lambda: Demuxer(path).streams[0].scan()),
        "pyav_index_ms": best(lambda: index_stream(path, 30)),
        "pyav_demux_ms": best(demux),
    }


def import_rss_mb(path: str, first: int, count: int) -> dict[str, float]:
    """RSS added by each step, MB, and the seconds of torchcodec's import (after torch's)."""
    import psutil

    process = psutil.Process()
    rss = [process.memory_info().rss]
    import torch  # noqa: F401

    rss.append(process.memory_info().rss)
    from lerobot_wds._torchcodec import video_decoder_class

    started = time.perf_counter()
    decoder_class = video_decoder_class()
    import_s = time.perf_counter() - started
    rss.append(process.memory_info().rss)
    decoder_class(path, seek_mode="exact").get_frames_at([first, first + 1, first + 2])
    rss.append(process.memory_info().rss)
    steps = ("torch", "torchcodec", "first_decode")
    grown = {f"{step}_mb": round((b - a) / 1e6) for step, a, b in zip(steps, rss[:-1], rss[1:], strict=True)}
    return grown | {"torchcodec_import_s": round(import_s, 3)}


def blocks_equal(path: str, first: int, count: int) -> dict[str, bool]:
    import torch
    from torchcodec.decoders import ColorConverter, VideoDecoder

    decoder = VideoDecoder(path, seek_mode="exact")
    middle = first + count // 2
    equal = True
    for start in (first, middle):
        expected = decoder.get_frames_in_range(start, start + 40).data
        converter = ColorConverter(device="cpu")
        got = torch.stack([converter.convert(raw).data for raw in _raw_frames(path, start, 40)])
        equal = equal and torch.equal(expected, got)
    return {"equal": equal}


MEASUREMENTS: dict[str, Callable[..., Any]] = {
    "decoder_forward": decoder_forward,
    "decoder_random_pairs": decoder_random_pairs,
    "blocks_forward": blocks_forward,
    "blocks_forward_2_threads": blocks_forward_2_threads,
    "scan_ms": scan_ms,
    "import_rss_mb": import_rss_mb,
    "blocks_equal": blocks_equal,
}
NEEDS_BLOCKS = {"blocks_forward", "blocks_forward_2_threads", "scan_ms", "blocks_equal"}
ONCE = {"scan_ms", "import_rss_mb", "blocks_equal"}  # not frame rates: returned as measured


def child(kind: str, source: str, frames: int) -> dict[str, Any]:
    videos = SourceVideos(source)  # pyarrow only: torch and torchcodec are not imported yet
    path, first = videos.episodes[0]["videos"][0]
    if kind == "import_rss_mb":
        return import_rss_mb(path, first, frames)
    import torchcodec

    major, minor = (int(part) for part in torchcodec.__version__.split(".")[:2])
    if kind in NEEDS_BLOCKS and (major, minor) < (0, 17):
        return {"skipped": f"torchcodec {torchcodec.__version__} has no Demuxer"}
    if kind in ONCE:
        return MEASUREMENTS[kind](path, first, frames)
    MEASUREMENTS[kind](path, first, 2 * CHUNK)  # warm-up: libraries loaded, file cached
    started = time.perf_counter()
    decoded = MEASUREMENTS[kind](path, first, frames)
    return {"frames_per_s": round(decoded / (time.perf_counter() - started), 1)}


def run_child(python: str, kind: str, source: str, frames: int) -> dict[str, Any]:
    command = [python, __file__, "--child", kind, "--source", source, "--frames", str(frames)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if completed.returncode != 0:
        return {"error": completed.stderr.strip().splitlines()[-1:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def better(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The best of two rounds: the higher frame rate, the lower times and sizes, every equality."""
    if old is None or "error" in old:
        return new
    if "frames_per_s" in new:
        return new if new["frames_per_s"] > old.get("frames_per_s", -1) else old
    if "error" in new or "skipped" in new:
        return old
    return {k: (old[k] and new[k]) if isinstance(new[k], bool) else min(old[k], new[k]) for k in new}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", type=parse_stack, action="append", metavar="NAME=PYTHON")
    parser.add_argument("--datasets", nargs="+", default=["g1"])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/blocks.json")
    parser.add_argument("--child", choices=sorted(MEASUREMENTS), help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.source, args.frames)))
        return
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    stacks = args.stack or [("this", sys.executable)]
    rows = []
    for name in args.datasets:
        row: dict[str, Any] = {"dataset": name, "frames": args.frames, "stacks": {s: {} for s, _ in stacks}}
        for _ in range(args.repeats):  # rounds over every measurement
            for stack, python in stacks:
                for kind in MEASUREMENTS:
                    result = run_child(python, kind, str(FIXTURES / name), args.frames)
                    print(f"  {name} {stack} {kind}: {result}", file=sys.stderr, flush=True)
                    row["stacks"][stack][kind] = better(row["stacks"][stack].get(kind), result)
        rows.append(row)
    write_record(
        args.out.resolve(),
        {"stacks": {s: stack_versions(p) for s, p in stacks}, "chunk": CHUNK, "results": rows},
    )


if __name__ == "__main__":
    main()
