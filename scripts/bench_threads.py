"""FFmpeg threads per decoder against DataLoader workers: torchcodec alone, the bench_read workload.

    python scripts/bench_threads.py [--datasets bench multi] [--threads 1 2 0]

The decode limit of bench_read.py (torchcodec decoding the workload's frames from the source mp4s in
random order, decoders reused, seek_mode exact) in 1 and 2 processes, with ``num_ffmpeg_threads`` 1
(torchcodec's default, what the reader uses), 2, and 0 (FFmpeg picks). Each measurement in a fresh
child process. Results go to benchmarks/results/threads.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench_read import BATCH_SIZE, FIXTURES, ROOT, WARMUP_BATCHES, run_child, write_results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["bench", "multi"])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/threads.json")
    args = parser.parse_args()
    rows = []
    for name in args.datasets:
        for workers in args.workers:
            row: dict[str, Any] = {"dataset": name, "num_workers": workers}
            for threads in args.threads:
                result = run_child(
                    sys.executable, "decode_limit", source=str(FIXTURES / name), workers=workers,
                    batches=args.batches, seed=0, ffmpeg_threads=threads,
                )  # fmt: skip
                row[f"ffmpeg_threads_{threads}"] = result
            print(json.dumps(row))
            rows.append(row)
    write_results(args.out, rows, batch_size=BATCH_SIZE, warmup_batches=WARMUP_BATCHES, batches=args.batches)


if __name__ == "__main__":
    main()
