"""The conversion's routes against one machine: same bytes, wall time (issue 14).

    python scripts/make_big_source.py --repeat 4 --dest /tmp/g1x4
    python scripts/bench_routes.py --source /tmp/g1x4 [--shard-size-mb 32] [--repeats 2]
                                   [--out benchmarks/results/routes.json]

Converts the same source by every route that runs here, each as the CLI process(es) a user would start:

- local, 1 worker: `lerobot-wds convert SRC DEST` (the reference bytes);
- local, 2 workers: `... --workers 2` (datatrove's LocalPipelineExecutor, a pool of 2);
- task-index parts: `... --tasks 2 --task-index 0` and `... --task-index 1` started together (two
  machines, here two processes on the 2 cores), then `lerobot-wds finalize DEST` once both have exited;
- Ray: `... --executor ray --workers 2` (a local 2-CPU Ray instance started and stopped by the command).

Wall time: from the route's first process start to its last process end (imports and Ray's start-up
included: what a user waits for); best of --repeats, every run kept. Same bytes: the sha256 of every
file under each destination equals the local 1-worker route's (same file list, same digests); a
mismatch is recorded (and printed), not hidden. Run it on a quiet machine; load averages recorded.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchenv import write_record

from lerobot_wds import ConvertConfig
from lerobot_wds.converter.convert import plan_conversion

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "lerobot_wds.cli", "--quiet"]
ROUTES = {  # name -> (what runs, extra convert flags per process; None: parts + finalize)
    "local, 1 worker": ("`convert` (one process)", [[]]),
    "local, 2 workers": ("`convert --workers 2` (one process, a pool of 2)", [["--workers", "2"]]),
    "task-index parts": (
        "`convert --tasks 2 --task-index 0` and `1` at once, then `finalize`",
        [["--tasks", "2", "--task-index", "0"], ["--tasks", "2", "--task-index", "1"]],
    ),
    "Ray": (
        "`convert --executor ray --workers 2` (a local 2-CPU instance)",
        [["--executor", "ray", "--workers", "2"]],
    ),
}


def run_route(source: Path, dest: Path, shard_size_mb: float, flags: list[list[str]]) -> float:
    """Wall seconds of one route into a fresh ``dest``: its processes at once, then finalize if parts."""
    shutil.rmtree(dest, ignore_errors=True)
    base = [*CLI, "convert", str(source), str(dest), "--shard-size-mb", str(shard_size_mb)]
    started = time.perf_counter()
    processes = [subprocess.Popen([*base, *extra]) for extra in flags]
    codes = [process.wait() for process in processes]
    if any(codes):
        raise SystemExit(f"{dest.name}: convert exited with {codes}; expected 0")
    if len(flags) > 1 or "--tasks" in flags[0]:
        subprocess.run([*CLI, "finalize", str(dest)], check=True)
    return time.perf_counter() - started


def digests(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        with path.open("rb") as file:
            out[path.relative_to(root).as_posix()] = hashlib.file_digest(file, "sha256").hexdigest()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/tmp/g1x4"), help="a LeRobot v3 folder")
    parser.add_argument("--shard-size-mb", type=float, default=32.0, help="shards (default 32: ~4 for g1x4)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/routes.json")
    args = parser.parse_args()
    plan = plan_conversion(str(args.source), ConvertConfig(shard_size_mb=args.shard_size_mb))
    load_before = os.getloadavg()
    routes: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-routes-") as work:
        reference: dict[str, str] | None = None
        for name, (what, flags) in ROUTES.items():
            dest = Path(work) / name.replace(" ", "-").replace(",", "")
            times = [run_route(args.source, dest, args.shard_size_mb, flags) for _ in range(args.repeats)]
            files = digests(dest)
            reference = files if reference is None else reference
            same = files == reference
            if not same:
                differing = sorted(set(files.items()) ^ set(reference.items()))
                print(f"{name}: files differ from the local route: {differing[:10]}", file=sys.stderr)
            routes.append({"route": name, "what": what, "wall_s": [round(t, 2) for t in times],
                           "files": len(files), "same_bytes": same})  # fmt: skip
            print(routes[-1], flush=True)
            shutil.rmtree(dest)
    out = {
        "command": " ".join(["python scripts/bench_routes.py", *sys.argv[1:]]),
        "load_avg_before_after": [round(v, 2) for v in (*load_before, *os.getloadavg())],
        "source": f"{args.source.name} (scripts/make_big_source.py: g1's 10 episodes repeated)",
        "source_mb": round(plan.source_bytes / 1e6, 1),
        "episodes": len(plan.episodes),
        "shard_size_mb": args.shard_size_mb,
        "shards": len(plan.shards),
        "repeats": args.repeats,
        "routes": routes,
    }
    write_record(args.out.resolve(), out)


if __name__ == "__main__":
    main()
