"""The reader and the decoder's limits under two (or more) torch + torchcodec stacks, in one run.

    python scripts/bench_stacks.py --stack pinned=.venv/bin/python --stack newest=.venv-newest/bin/python
                                   [--lerobot-venv .venv-lerobot] [--datasets g1] [--workers 0 2]

Each `--stack NAME=PYTHON` names an interpreter whose torch and torchcodec are measured: every
measurement of `bench_read.py` (the rows of `--variants`, drop-in and fast by default, and both decode
limits: random-window limit, sequential decode bound) runs as `bench_read.py --child ...` under that
interpreter, with this checkout's `src/` first on its PYTHONPATH, so the same lerobot_wds code is timed on
each stack. LeRobot 0.6.1 (float32 and uint8 rows, in its own venv) runs once per dataset and
`num_workers` and is the peer of every stack's rows. Rounds over every measurement of a row, the best of
`--repeats` kept, so a noisy spell on a shared machine falls on single runs rather than on one stack.

Results go to benchmarks/results/read_stacks.json (through benchenv, plus each interpreter's versions);
`scripts/plot_bench.py` renders them as one table per dataset with the stacks side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Any

from bench_read import (
    BATCH_SIZE,
    FIXTURES,
    LEROBOT,
    LIMITS,
    ROOT,
    VARIANTS,
    WARMUP_BATCHES,
    convert_once,
    dataset_info,
    measurement_arguments,
    ratio,
    run_child,
    write_results,
)
from benchenv import PACKAGES

DEFAULT_VARIANTS = ("drop_in", "fast")


def parse_stack(text: str) -> tuple[str, str]:
    name, sep, python = text.partition("=")
    if not sep or not name or not python:
        raise argparse.ArgumentTypeError(f"--stack: got {text!r}; expected NAME=PYTHON")
    return name, os.path.abspath(python)  # not resolved: a venv's python is a symlink out of the venv


def stack_versions(python: str) -> dict[str, Any]:
    """The versions benchenv records, read by ``python`` itself (and LeRobot's where installed)."""
    script = (
        "import json, sys; sys.path.insert(0, 'scripts'); from benchenv import versions; "
        f"print(json.dumps(versions({(*PACKAGES, 'lerobot')!r})))"
    )
    completed = subprocess.run([python, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    return {"python": python, "versions": json.loads(completed.stdout)}


def children(
    args: argparse.Namespace, url: str, source: str
) -> dict[tuple[str | None, str], tuple[str, str, dict[str, Any]]]:
    """(stack or None for LeRobot, row key) -> (interpreter, child kind, options) of one dataset's row."""
    found: dict[tuple[str | None, str], tuple[str, str, dict[str, Any]]] = {}
    if args.lerobot_venv:
        python = str(args.lerobot_venv / "bin/python")
        for key, options in LEROBOT.items():
            flags = {"source": source, "return_uint8": int(options["return_uint8"])}
            found[None, key] = (python, "lerobot", flags)
    for stack, python in args.stack:
        for limit in LIMITS:
            found[stack, limit] = (python, limit, {"source": source})
        for variant in args.variants:
            found[stack, variant] = (python, "ours", {"url": url, "variant": variant})
    return found


def stack_ratios(row: dict[str, Any], stacks: list[str], variants: list[str]) -> dict[str, float | None]:
    """Per stack, each row of ours against its LeRobot peer; each later stack against the first."""
    out: dict[str, float | None] = {}
    for stack in stacks:
        flat = {**row, **row["stacks"][stack]}
        for name in variants:
            peer = VARIANTS[name].peer
            out[f"{stack}:{name}_vs_{peer}"] = ratio(flat, name, peer, "samples_per_s")
    first = stacks[0]
    for stack in stacks[1:]:
        for key in row["stacks"][stack]:
            pair = {"a": row["stacks"][stack].get(key, {}), "b": row["stacks"][first].get(key, {})}
            out[f"{stack}:{key}_vs_{first}"] = ratio(pair, "a", "b", "samples_per_s")
    return out


def measure_row(args: argparse.Namespace, name: str, workers: int) -> dict[str, Any]:
    url, source = convert_once(name), str(FIXTURES / name)
    row: dict[str, Any] = {"dataset": name, **dataset_info(url), "num_workers": workers, "stacks": {}}
    common = {"workers": workers, "batches": args.batches, "seed": args.seed}
    for stack, _ in args.stack:
        row["stacks"][stack] = {}
    for _ in range(args.repeats):
        for (stack, key), (python, kind, options) in children(args, url, source).items():
            result = run_child(python, kind, **options, **common)
            print(f"  {name} w{workers} {stack or 'lerobot'} {key}: {result}", file=sys.stderr, flush=True)
            cell = row if stack is None else row["stacks"][stack]
            if key not in cell or result.get("samples_per_s", -1.0) > cell[key].get("samples_per_s", -1.0):
                cell[key] = result
    row["ratios"] = stack_ratios(row, [s for s, _ in args.stack], args.variants)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", type=parse_stack, action="append", required=True, metavar="NAME=PYTHON")
    measurement_arguments(parser, datasets=["g1"], out=ROOT / "benchmarks/results/read_stacks.json")
    args = parser.parse_args()
    # every interpreter imports this checkout's lerobot_wds, whatever its own install points at
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    started = time.perf_counter()
    stacks = {stack: stack_versions(python) for stack, python in args.stack}
    if args.lerobot_venv:
        stacks["lerobot"] = stack_versions(str(args.lerobot_venv / "bin/python"))
    rows = []
    for name in args.datasets:
        for workers in args.workers:
            rows.append(measure_row(args, name, workers))
            print(json.dumps(rows[-1]), flush=True)
    write_results(
        args.out, rows, batch_size=BATCH_SIZE, warmup_batches=WARMUP_BATCHES, batches=args.batches,
        repeats=args.repeats, stacks=stacks, limits=LIMITS,
        variants={name: asdict(VARIANTS[name]) for name in args.variants},
        lerobot=LEROBOT if args.lerobot_venv else {}, elapsed_s=round(time.perf_counter() - started),
    )  # fmt: skip


if __name__ == "__main__":
    main()
