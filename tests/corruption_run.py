"""Child process of the corruption matrix: runs cases under a memory limit and a per-case time limit.

``python tests/corruption_run.py SPEC.json`` with SPEC ``{"cases": [[name, root], ...], "modes": [...],
"timeout_s": .., "memory_bytes": ..}``; modes are ``verify`` (the CLI, in this process), ``w0`` and
``w2`` (a whole epoch through a DataLoader with that many workers). Prints one JSON line per event:
``{"start": [name, mode]}`` before each run (a run that starts and never reports is a crash) and
``{"case", "mode", "outcome", "detail", "max_rss_mb"}`` after it. Outcomes: ``error`` (detail: "Type:
message" or verify's output), ``ok`` (every item checked against its self-describing values, each
frame exactly once), ``wrong`` (an item disagreed), ``hang`` (past the time limit), ``unpickled``.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

TOTAL_FRAMES = 224  # tests/data/tiny


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang


def _item_problem(item: dict[str, Any]) -> str | None:
    from helpers import read_frame_code

    episode, frame = int(item["episode_index"]), int(item["frame_index"])
    action = item["action"].numpy()
    if (int(action[1]), int(action[2])) != (episode, frame):
        return f"index {int(item['index'])}: action says {action[1:3]}, item says {(episode, frame)}"
    image = (item["observation.images.front"].numpy() * 255).round().astype(np.uint8)
    code = read_frame_code(image)
    if code[:2] != (frame, episode):
        return f"index {int(item['index'])}: frame shows {code}, item is frame {frame} of episode {episode}"
    return None


def _read(root: str, num_workers: int) -> tuple[str, str]:
    from torch.utils.data import DataLoader

    from lerobot_wds import ShardedLeRobotDataset

    seen: list[int] = []
    try:
        dataset = ShardedLeRobotDataset(root, seed=1)
        for item in DataLoader(dataset, batch_size=None, num_workers=num_workers):
            problem = _item_problem(item)
            if problem is not None:
                return "wrong", problem
            seen.append(int(item["index"]))
    except _Hang:
        raise
    except BaseException as exc:
        # Clear the traceback's frames: they hold the DataLoader iterator in a reference cycle, and an
        # iterator finalised later by the garbage collector waits 5 s per worker to shut down.
        traceback.clear_frames(exc.__traceback__)
        return "error", f"{type(exc).__name__}: {exc}"
    if sorted(seen) != list(range(TOTAL_FRAMES)):
        return "wrong", f"{len(seen)} items, {len(set(seen))} distinct; expected each of {TOTAL_FRAMES} once"
    return "ok", ""


def _verify(root: str) -> tuple[str, str]:
    from lerobot_wds.cli import main

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(["verify", root])
    except _Hang:
        raise
    except BaseException as exc:
        return "error", f"uncaught {type(exc).__name__}: {exc}"
    return ("ok" if code == 0 else "error"), f"exit {code}: {out.getvalue()}"


def _peak_rss_kb() -> int:
    """This process's peak RSS since it started (VmHWM). Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux
    carries that across exec, so it held the peak of the pytest process this child was forked from (over
    1 GB late in a full run)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    limit = spec["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # DataLoader workers inherit it
    signal.signal(signal.SIGALRM, _alarm)
    for name, root in spec["cases"]:
        for mode in spec["modes"]:
            print(json.dumps({"start": [name, mode]}), flush=True)  # noqa: T201
            signal.alarm(spec["timeout_s"])
            started = time.perf_counter()
            try:
                outcome, detail = _verify(root) if mode == "verify" else _read(root, int(mode[1:]))
            except _Hang:
                outcome, detail = "hang", f"no result within {spec['timeout_s']} s"
            finally:
                signal.alarm(0)
                # A failed epoch's DataLoader iterator is held by reference cycles through the traceback:
                # collect it now (shutting its workers down), not in a later case's forked workers.
                gc.collect()
            if (Path(root) / "unpickled.marker").exists():
                outcome, detail = "unpickled", "a pickle member was loaded"
            rss = max(_peak_rss_kb(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
            record = {
                "case": name,
                "mode": mode,
                "outcome": outcome,
                "detail": detail,
                "max_rss_mb": rss >> 10,
                "seconds": round(time.perf_counter() - started, 2),
            }
            print(json.dumps(record), flush=True)  # noqa: T201


if __name__ == "__main__":
    main(sys.argv[1])
