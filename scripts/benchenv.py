"""Where a benchmark ran: one record written into every results file of `benchmarks/results/`.

    from benchenv import environment, write_record
    write_record("balance.json", {"command": "python scripts/bench_balance.py", "results": rows})

`environment()` is the machine (CPU count, architecture), the Python and library versions that decide the
figures (torch, torchcodec, PyAV, pyarrow, and LeRobot's when a LeRobot venv took part), the git commit of
this checkout (with `+dirty` when the tree had changes) and the load average at the time of the call: the
machines here are shared, and a figure means little without the load it was measured under.
`scripts/plot_bench.py` prints it above each table of BENCHMARKS.md.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results"
PACKAGES = ("torch", "torchcodec", "av", "pyarrow", "numpy")


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def git_commit() -> str:
    """The checkout's short commit, ``+dirty`` if tracked files differ from it; "unknown" outside git."""
    try:
        sha = _git("rev-parse", "--short=12", "HEAD").strip()
        dirty = _git("status", "--porcelain", "--untracked-files=no").strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` in this interpreter (missing ones left out)."""
    found = {}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def environment(**extra: Any) -> dict[str, Any]:
    """The machine, versions, commit and load average now; ``extra`` (e.g. ``lerobot="0.6.1"``) added."""
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "versions": versions(),
        "git_commit": git_commit(),
        "load_avg_1_5_15": [round(v, 2) for v in os.getloadavg()],
        **extra,
    }


def command_line() -> str:
    """How this script was started, relative to the repository when it lives in it."""
    script = Path(sys.argv[0]).resolve()
    name = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return " ".join(["python", str(name), *sys.argv[1:]])


def write_record(name: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` to ``benchmarks/results/<name>`` (or a path), ``command`` and ``machine`` filled in.

    ``record["machine"]`` is set to :func:`environment` unless the caller measured it already (at the start
    of a long run, say); ``record["command"]`` to the command line unless given.
    """
    path = RESULTS / name  # an absolute path stays itself
    full = {"command": record.get("command", command_line()), "machine": record.get("machine", environment())}
    full.update({k: v for k, v in record.items() if k not in full})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(full, indent=2) + "\n")
    print(f"wrote {path}")
    return path
