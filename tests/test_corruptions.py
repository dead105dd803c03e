"""The corruption matrix (tests/corruptions.py): every named corruption of a converted dataset, read by
the reader at 0 workers (and 2 for a representative subset) and by ``verify``, in fresh processes under
a memory limit and a per-case time limit. Each must give one clear error naming what is wrong (the
file; the shard and episode where one is involved) or a correct read; never a hang, a crash, wrong
data, unbounded memory or an unpickled member.

Run as a script for the figures of issue 18: ``python tests/test_corruptions.py [--all-w2]``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from corruptions import CASES
from helpers import DATA

from lerobot_wds import ConvertConfig, convert

TESTS = Path(__file__).parent
CASE_TIMEOUT_S = 30  # a whole epoch of `tiny` takes ~1 s at w0, ~2 s at w2
# The address-space limit of each child: a reader importing torch and torchcodec maps ~2.7 GB (VmPeak of
# a w0 epoch of `tiny`); 4 GiB leaves 1.3 GB, so the rows bomb (2 GiB inflated) or a 10**12-byte read
# fails if it is ever attempted.
MEMORY_BYTES = 4 << 30
MAX_RSS_MB = 1024  # peak RSS of any process of a child; a clean w0 epoch of `tiny` peaks at ~370 MB
# `python tests/test_corruptions.py --all-w2`: every case at 2 workers too (CI reads the subset).
ALL_AT_W2 = "--all-w2" in sys.argv


def at_w2(case: Any) -> bool:
    return case.with_workers or ALL_AT_W2


def prepare(workdir: Path) -> dict[str, str]:
    """A converted `tiny` per case, corrupted: case name -> root."""
    clean = workdir / "clean"
    convert(str(DATA / "tiny"), str(clean), ConvertConfig())
    roots = {}
    for number, case in enumerate(CASES):
        root = workdir / f"case-{number:02d}"
        shutil.copytree(clean, root)
        case.apply(root)
        roots[case.name] = str(root)
    return roots


def run_children(roots: dict[str, str], workdir: Path) -> list[dict[str, Any]]:
    """Two children in parallel (2 cores): every case by verify and w0; the subset by w2."""
    groups = [
        (list(roots), ["verify", "w0"]),
        ([c.name for c in CASES if at_w2(c)], ["w2"]),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    children = []
    for number, (names, modes) in enumerate(groups):
        spec = workdir / f"spec-{number}.json"
        cases = [[name, roots[name]] for name in names]
        budget = {"timeout_s": CASE_TIMEOUT_S, "memory_bytes": MEMORY_BYTES}
        spec.write_text(json.dumps({"cases": cases, "modes": modes, **budget}))
        command = [sys.executable, str(TESTS / "corruption_run.py"), str(spec)]
        children.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    records = []
    for child, (names, modes) in zip(children, groups, strict=True):
        total_s = CASE_TIMEOUT_S * len(names) * len(modes) + 60
        try:
            out, err = child.communicate(timeout=total_s)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
        records.extend(_records(out.decode(), err.decode(), child.returncode))
    return records


def _records(out: str, err: str, returncode: int) -> list[dict[str, Any]]:
    """Result lines; a run that started without a result is a crash (the child died in it)."""
    records, started = [], None
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if "start" in event:
            started = event["start"]
        else:
            records.append(event)
            started = None
    if started is not None:
        detail = f"child exited {returncode}; stderr tail: {err[-2000:]}"
        records.append({"case": started[0], "mode": started[1], "outcome": "crash", "detail": detail})
    return records


def judge(records: list[dict[str, Any]]) -> tuple[Counter[str], list[str]]:
    """(figures, failures): each run is 'clear error', 'correct read', or what went wrong."""
    cases = {c.name: c for c in CASES}
    figures: Counter[str] = Counter()
    failures = []
    for record in records:
        case, mode, outcome = cases[record["case"]], record["mode"], record["outcome"]
        expected = case.verify if mode == "verify" else case.reader
        verdict = outcome
        if outcome == "error" and expected is not None and re.search(expected, record["detail"], re.S):
            verdict = "clear error"
        elif outcome == "error":
            verdict = "unclear error" if expected is not None else "error where a correct read was expected"
        elif outcome == "ok" and expected is None:
            verdict = "correct read"
        elif outcome == "ok":
            verdict = "no error (verify exit 0)" if mode == "verify" else "read without the expected error"
        if record.get("max_rss_mb", 0) > MAX_RSS_MB:
            verdict = f"over {MAX_RSS_MB} MB RSS"
        figures[verdict] += 1
        if verdict not in ("clear error", "correct read"):
            failures.append(f"{case.name} [{mode}]: {verdict}: {record['detail'][:600]}")
    ran = {(r["case"], r["mode"]) for r in records}
    for case in CASES:
        for mode in ["verify", "w0", *(["w2"] if at_w2(case) else [])]:
            if (case.name, mode) not in ran:
                figures["not run (child killed)"] += 1
                failures.append(f"{case.name} [{mode}]: not run")
    return figures, failures


@pytest.mark.slow
def test_every_corruption_is_a_clear_error_or_a_correct_read(tmp_path: Path) -> None:
    roots = prepare(tmp_path)
    figures, failures = judge(run_children(roots, tmp_path))
    assert not failures, f"{dict(figures)}\n" + "\n".join(failures)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        roots = prepare(workdir)
        records = run_children(roots, workdir)
    figures, failures = judge(records)
    print("\n".join(failures))  # noqa: T201
    print(json.dumps({"distinct_corruptions": len(CASES), "runs": len(records), **figures}, indent=1))  # noqa: T201


if __name__ == "__main__":
    main()
