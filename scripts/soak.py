"""Soak at cluster shape: ranks x workers x faults x kills x resumes, and a ledger proving nothing is lost.

    python scripts/soak.py                  # the short soak (CI): a few minutes, 4 kills, 1 hung read
    python scripts/soak.py --minutes 60 --out benchmarks/results/soak.json && python scripts/plot_bench.py

A real S3-compatible server (SeaweedFS) on 127.0.0.1 serves the converted ``multi`` fixture (24 episodes,
1,852 frames, 2 AV1 cameras) through the fault proxy of the tests, which injects, on a seeded schedule,
cut connections (truncated bodies), 503 SlowDown answers, stalled connections, slow responses and a
refusing server. A training job of 2 ranks (gloo on loopback, one process each, ``scripts/soak_rank.py``)
x 2 DataLoader workers trains epoch after epoch (reshuffled by ``set_epoch``) with ``StatefulDataLoader``
checkpoints. The driver kills it at seeded points (SIGKILL of a rank, of a worker, of every rank at
once), hangs the server once per event cycle (connections accepted, never answered: the job must end
in ``RetryPolicy.timeout_s``'s clear error), and restarts it from its last committed checkpoint,
sometimes with another number of ranks or workers (elastic). Meanwhile it samples RSS, open file
descriptors and threads of every job process and the job's ``/dev/shm`` entries, and after each attempt
checks that no process outlived it. At the end it checks the ledger (see ``soak_ledger.py``) and prints

    soak: N samples checked over E epochs, K kills, R resumes (X elastic), F faults injected,
          L lost, D repeated, peak RSS M MB            (one line)

(samples: committed samples of finished epochs; peak RSS: of the job's processes summed, forked pages
counted once per process), exiting 1 on any ledger error or broken bound. Deterministic given
``--seed``: the kill points (in batches of rank 0), their kinds and layouts, the fault kinds and their
times. Which request a fault hits depends on timing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchenv import write_record  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402
from s3server import SeaweedFS  # noqa: E402
from soak_ledger import Batch, check_batch_counts, check_epoch, committed, read_ledger  # noqa: E402

from lerobot_wds import ConvertConfig, ShardedLeRobotDataset, convert  # noqa: E402

BASE_LAYOUT = (2, 2)  # ranks x DataLoader workers
ELASTIC_LAYOUTS = [(1, 2), (2, 1), (3, 1), (1, 3), (2, 0)]
BATCH_SIZE = 16
SAVE_EVERY = 8  # steps between checkpoints
# RetryPolicy.timeout_s of the job: a hung server must end the job about this soon. 10 s was too short
# for the faults the job must survive: a stall (s3fs' 5 s socket timeout) plus refused reconnections
# retried by botocore and s3fs used up 10 s in one attempt.
READ_TIMEOUT_S = 30.0
HANG_GRACE_S = 60.0  # + the time to reach a read, the DataLoader's error path and the other ranks' exit
KILL_GRACE_S = 60.0  # after a kill, the rest of the job must have ended within this (gloo notices a peer)
ORPHAN_GRACE_S = 10.0  # a DataLoader worker of a dead rank exits within ~1 s (reader/orphans.py)
STUCK_S = 180.0  # no batch for this long: the job hangs
# Per process tree (a rank and its workers), from an attempt's 2nd epoch end to its last. Measured at 2
# workers over 8 epochs: RSS +0.4 MB per epoch and flattening, fds jitter by +-8 (reads in flight),
# threads constant; a leak of one fd or thread per epoch shows within a long run.
GROWTH_LIMITS = {"rss_mb": 64.0, "fds": 16, "threads": 4}
MAX_SAMPLES_KEPT = 1500  # of the once-a-second process samples, in the results file (peaks use all)
FAULT_KINDS = ["drop", "reject", "stall", "slow", "reset"]


@dataclass
class Event:
    after_batches: int  # of rank 0 in the attempt
    kind: str  # "job", "rank", "worker" (SIGKILL) or "hang" (the server stops answering)
    layout: tuple[int, int]  # of the next attempt


@dataclass
class Attempt:
    index: int
    layout: tuple[int, int]
    resumed_step: int
    resumed_epoch: int
    event: str | None = None
    outcome: str = ""
    duration_s: float = 0.0
    hang_to_exit_s: float | None = None
    outlived: int = 0


@dataclass
class Soak:
    args: argparse.Namespace
    folder: Path
    url: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    proxy: FaultProxy | None = None
    attempts: list[Attempt] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    samples: list[dict[str, float]] = field(default_factory=list)  # process figures over time
    faults: Counter[str] = field(default_factory=Counter)
    job_pids: set[int] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)
    quiet: threading.Event = field(default_factory=threading.Event)  # set: no new faults (a hang is on)
    done: threading.Event = field(default_factory=threading.Event)


# ----------------------------------------------------------------------------------- set-up


def start_storage(soak: Soak) -> SeaweedFS:
    """SeaweedFS on loopback with the converted fixture uploaded; readers reach it through the proxy."""
    import s3fs

    (soak.folder / "s3").mkdir()
    server = SeaweedFS(soak.folder / "s3")
    server.start()
    local = soak.folder / "multi"
    convert(str(ROOT.parent / "shared" / "fixtures" / "multi"), str(local), ConvertConfig(shard_size_mb=0.4))
    fs = s3fs.S3FileSystem(**server.options, skip_instance_cache=True)
    fs.mkdir("soak")
    fs.put(str(local), "soak/multi", recursive=True)
    port = int(server.endpoint.rsplit(":", 1)[1])
    soak.proxy = FaultProxy(port)
    # s3fs' socket timeouts shortened (15 s by default) so that a stalled connection costs 5 s
    soak.options = {**server.options, "client_kwargs": {"endpoint_url": soak.proxy.endpoint},
                    "config_kwargs": {"connect_timeout": 5, "read_timeout": 5}}  # fmt: skip
    soak.url = "s3://soak/multi"
    return server


def plan_events(rng: random.Random, count: int, low: int, high: int) -> list[Event]:
    """``count`` events, each kind at least once when ``count`` allows, about a third elastic."""
    kinds = ["rank", "worker", "job", "hang"] * (count // 4 + 1)
    kinds = kinds[:count]
    rng.shuffle(kinds)
    events = []
    for k, kind in enumerate(kinds):
        elastic = rng.random() < 0.35 or k == 1  # the second restart is always elastic
        layout = rng.choice(ELASTIC_LAYOUTS) if elastic else BASE_LAYOUT
        events.append(Event(rng.randint(low, high), kind, layout))
    return events


# ------------------------------------------------------------------------ watching the job


def job_processes(ranks: list[subprocess.Popen[bytes]]) -> list[psutil.Process]:
    found = []
    for rank in ranks:
        try:
            parent = psutil.Process(rank.pid)
            found += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return found


def shm_entries(pids: set[int]) -> tuple[int, int]:
    """Entries in /dev/shm: all of them, and those named after a job process (torch's ``torch_<pid>_``)."""
    names = os.listdir("/dev/shm") if os.path.isdir("/dev/shm") else []
    ours = [n for n in names if (m := re.match(r"torch_(\d+)_", n)) and int(m.group(1)) in pids]
    return len(names), len(ours)


def monitor(soak: Soak, state: dict[str, Any]) -> None:
    """Every second: RSS, fds, threads of every job process; /dev/shm entries."""
    while not soak.done.wait(1.0):
        ranks = state.get("ranks") or []
        rss = fds = threads = 0.0
        peak_process = 0.0
        procs = job_processes(ranks)
        for proc in procs:
            try:
                mb = proc.memory_info().rss / 2**20
                rss += mb
                peak_process = max(peak_process, mb)
                fds += proc.num_fds()
                threads += proc.num_threads()
                soak.job_pids.add(proc.pid)
            except psutil.NoSuchProcess:
                continue
        shm_all, shm_ours = shm_entries(soak.job_pids)
        soak.samples.append({
            "t_s": round(time.monotonic() - soak.started, 1), "attempt": state.get("attempt", -1),
            "rss_mb": round(rss, 1), "max_process_rss_mb": round(peak_process, 1), "fds": fds,
            "threads": threads, "processes": len(procs), "shm_entries": shm_all, "shm_job_entries": shm_ours,
        })  # fmt: skip


def inject_faults(soak: Soak, rng: random.Random) -> None:
    """A fault every 3-8 s (seeded kinds and times) while no hang is under way."""
    proxy = soak.proxy
    assert proxy is not None
    while not soak.done.wait(rng.uniform(3.0, 8.0)):
        kind = rng.choice(FAULT_KINDS)
        amount = rng.randint(1, 200_000)
        if soak.quiet.is_set():
            continue
        soak.faults[kind] += 1
        if kind == "drop":
            proxy.drop_after(amount)  # a body cut short after this many bytes
        elif kind == "reject":
            proxy.reject(1 + amount % 3)  # 503 SlowDown
        elif kind == "stall":
            proxy.stall(8.0)  # the next connection: no answer for 8 s, past s3fs' 5 s read timeout
        elif kind == "slow":
            proxy.latency_s = 0.3
            soak.done.wait(3.0)
            proxy.latency_s = 0.0
        elif kind == "reset":
            proxy.down()  # connections reset, new ones refused
            soak.done.wait(1.0)
            if not soak.quiet.is_set():
                proxy.up()


# -------------------------------------------------------------------------------- attempts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rank0_batches(folder: Path, attempt: int) -> int:
    path = folder / "ledger" / f"a{attempt}-r0.jsonl"
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(1 for line in f if not line.startswith(b'{"kind"'))


def ledger_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in (folder / "ledger").glob("*.jsonl"))


def start_job(soak: Soak, attempt: Attempt, max_epochs: int) -> list[subprocess.Popen[bytes]]:
    world_size, num_workers = attempt.layout
    job = {
        "folder": str(soak.folder), "url": soak.url, "storage_options": soak.options, "fps": 15,
        "seed": soak.args.seed, "attempt": attempt.index, "world_size": world_size,
        "num_workers": num_workers, "batch_size": BATCH_SIZE, "save_every": SAVE_EVERY,
        "max_epochs": max_epochs, "port": free_port(), "read_timeout_s": READ_TIMEOUT_S,
        "collective_timeout_s": 120,
    }  # fmt: skip
    path = soak.folder / f"job{attempt.index}.json"
    path.write_text(json.dumps(job))
    logs = soak.folder / "logs"
    return [
        subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "soak_rank.py"), str(path), str(rank)],
            stdout=(logs / f"a{attempt.index}-r{rank}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for rank in range(world_size)
    ]


def kill_all(ranks: list[subprocess.Popen[bytes]]) -> None:
    for rank in ranks:
        if rank.poll() is None:
            rank.send_signal(signal.SIGKILL)
    for rank in ranks:
        rank.wait()


def fire(soak: Soak, event: Event, ranks: list[subprocess.Popen[bytes]], rng: random.Random) -> str:
    """Fires ``event``; returns what was done: its kind, or "rank" for a worker kill in a job without
    DataLoader workers."""
    if event.kind == "hang":
        soak.quiet.set()
        assert soak.proxy is not None
        soak.proxy.hang()
        return "hang"
    if event.kind == "job":
        kill_all(ranks)
        return "job"
    victim = rng.randrange(len(ranks))
    if event.kind == "worker":
        try:
            workers = sorted(p.pid for p in psutil.Process(ranks[victim].pid).children())
        except psutil.NoSuchProcess:
            workers = []
        if workers:
            os.kill(rng.choice(workers), signal.SIGKILL)
            return "worker"
    ranks[victim].send_signal(signal.SIGKILL)
    return "rank"


def log_tail(soak: Soak, attempt: Attempt) -> str:
    lines = []
    for path in sorted((soak.folder / "logs").glob(f"a{attempt.index}-r*.log")):
        lines += [line for line in path.read_text(errors="replace").splitlines() if line.strip()][-2:]
    return " | ".join(lines)[-600:]


def run_attempt(
    soak: Soak, attempt: Attempt, event: Event | None, state: dict[str, Any], deadline: float
) -> None:
    """One start of the job, until it completes, an event ends it, or it breaks a bound."""
    max_epochs = soak.args.epochs if soak.args.minutes is None else 1 << 30
    ranks = start_job(soak, attempt, max_epochs)
    state["ranks"], state["attempt"] = ranks, attempt.index
    started = time.monotonic()
    fired_at = watch(soak, attempt, event, ranks, deadline)
    ended = time.monotonic()
    attempt.duration_s = round(ended - started, 1)
    if event is not None and event.kind == "hang" and fired_at is not None:
        attempt.hang_to_exit_s = round(ended - fired_at, 1)
        logs = (soak.folder / "logs").glob(f"a{attempt.index}-r*.log")
        if not any(
            "did not finish within RetryPolicy.timeout_s" in p.read_text(errors="replace") for p in logs
        ):
            soak.errors.append(
                f"attempt {attempt.index}: hung server, but no timeout error; logs: {log_tail(soak, attempt)}"
            )
        assert soak.proxy is not None
        soak.proxy.up()
        soak.quiet.clear()
    codes = [r.returncode for r in ranks]
    if not attempt.outcome:
        if fired_at is not None:
            attempt.outcome = f"ended by {attempt.event}"
        else:
            attempt.outcome = "completed" if all(c == 0 for c in codes) else "failed"
    if attempt.outcome == "failed":
        soak.errors.append(
            f"attempt {attempt.index}: failed without an injected event (exit codes {codes}): "
            f"{log_tail(soak, attempt)}"
        )
    state["ranks"] = []
    attempt.outlived = reap(soak)


def watch(
    soak: Soak, attempt: Attempt, event: Event | None, ranks: list[subprocess.Popen[bytes]], deadline: float
) -> float | None:
    """Until every rank exited: fires ``event`` at its point, stops a timed run at the deadline, kills a
    job that stopped handing out batches or outlived its event's grace. Returns when the event fired."""
    rng = random.Random(soak.args.seed * 7919 + attempt.index)
    last_size, last_progress_at = -1, time.monotonic()
    fired_at: float | None = None
    while not soak.done.wait(0.2):
        now = time.monotonic()
        soak.job_pids.update(p.pid for p in job_processes(ranks))
        if all(r.poll() is not None for r in ranks):
            return fired_at
        if soak.args.minutes is not None and now > deadline:
            (soak.folder / "stop").touch()  # every rank stops at the end of the current epoch
        if (size := ledger_bytes(soak.folder)) != last_size:
            last_size, last_progress_at = size, now
        elif now - last_progress_at > STUCK_S and fired_at is None:
            soak.errors.append(f"attempt {attempt.index}: no batch for {STUCK_S:.0f} s (the job hangs)")
            attempt.outcome = "stuck"
            break
        if event and fired_at is None and rank0_batches(soak.folder, attempt.index) >= event.after_batches:
            attempt.event, fired_at = fire(soak, event, ranks, rng), now
        grace = READ_TIMEOUT_S + HANG_GRACE_S if event and event.kind == "hang" else KILL_GRACE_S
        if fired_at is not None and now - fired_at > grace:
            soak.errors.append(
                f"attempt {attempt.index}: the job did not end within {grace:.0f} s of the {attempt.event} "
                f"event; last log lines: {log_tail(soak, attempt)}"
            )
            break
    kill_all(ranks)
    return fired_at


def reap(soak: Soak) -> int:
    """Job processes still alive ``ORPHAN_GRACE_S`` after the job ended (each an error, then killed), and
    /dev/shm entries of job processes left behind (each an error)."""
    deadline = time.monotonic() + ORPHAN_GRACE_S
    alive: list[psutil.Process] = []
    while True:
        alive = []
        for pid in list(soak.job_pids):  # the monitor thread adds to it
            try:
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    for proc in alive:
        soak.errors.append(
            f"process {proc.pid} outlived its job by {ORPHAN_GRACE_S:.0f} s: {proc.cmdline()[:3]}"
        )
        proc.kill()
    _, leaked = shm_entries(soak.job_pids)
    if leaked:
        soak.errors.append(f"{leaked} /dev/shm entries of the job's processes left after it ended")
    soak.job_pids.clear()
    return len(alive)


# ---------------------------------------------------------------------------------- checks


def check_ledger(soak: Soak) -> dict[str, Any]:
    """Every epoch the job finished, from the committed ledger; plus the checker's own self-test."""
    dataset = ShardedLeRobotDataset(
        soak.url, seed=soak.args.seed, episode_pool_size=4, storage_options=soak.options
    )
    ledger = read_ledger(soak.folder / "ledger")
    kept = committed(ledger.batches, [a.resumed_step for a in soak.attempts])
    layouts = {a.index: a.layout for a in soak.attempts}
    last = soak.attempts[-1]
    finished = {end["e"] for end in ledger.epoch_ends if end["a"] == last.index} | set(
        range(last.resumed_epoch)
    )
    epochs = []
    for epoch in sorted(finished):
        result = check_epoch(dataset, [b for b in kept if b.epoch == epoch], layouts, epoch, BATCH_SIZE)
        soak.errors += result.errors
        epochs.append(result)
    soak.errors += check_batch_counts(ledger.epoch_ends)
    if epochs and not checker_catches_errors(
        dataset, [b for b in kept if b.epoch == epochs[0].epoch], layouts
    ):
        soak.errors.append("ledger checker self-test: a dropped or a doubled batch went unnoticed")
    grown = growth(ledger.epoch_ends)
    for key, limit in GROWTH_LIMITS.items():
        if grown[key]["max_growth"] > limit:
            soak.errors.append(
                f"{key} grew by {grown[key]['max_growth']:g} from the 2nd to the last epoch end of "
                f"{grown[key]['worst']}; expected at most {limit:g}"
            )
    return {
        "epochs": [asdict(e) for e in epochs], "rolled_back_batches": len(ledger.batches) - len(kept),
        "torn_lines": ledger.torn_lines, "growth": grown, "lost": sum(e.lost for e in epochs),
        "samples_checked": sum(e.samples for e in epochs), "repeated": sum(e.repeated for e in epochs),
    }  # fmt: skip


def checker_catches_errors(
    dataset: ShardedLeRobotDataset, batches: list[Batch], layouts: dict[int, tuple[int, int]]
) -> bool:
    """The checker must flag an epoch with a batch dropped and one with a batch doubled."""
    epoch = batches[0].epoch
    lost = check_epoch(dataset, batches[1:], layouts, epoch, BATCH_SIZE)
    twice = check_epoch(dataset, [*batches, batches[-1]], layouts, epoch, BATCH_SIZE)
    return bool(lost.lost and lost.errors and twice.repeated and twice.errors)


def growth(epoch_ends: list[dict[str, Any]]) -> dict[str, Any]:
    """Per attempt and rank (its process tree): RSS, fds and threads at the last epoch end minus at the
    second (the first is still warming up), the largest of each, and every epoch end's values."""
    by_tree: dict[str, list[dict[str, Any]]] = {}
    for end in sorted(epoch_ends, key=lambda e: (e["a"], e["r"], e["e"])):
        by_tree.setdefault(f"attempt {end['a']} rank {end['r']}", []).append(end)
    result: dict[str, Any] = {
        "limits": GROWTH_LIMITS,
        "epoch_ends": {
            tree: [[end[key] for key in GROWTH_LIMITS] for end in ends] for tree, ends in by_tree.items()
        },
    }
    for key in GROWTH_LIMITS:
        grown = {tree: e[-1][key] - e[1][key] for tree, e in by_tree.items() if len(e) >= 3}
        worst = max(grown, key=lambda tree: grown[tree], default=None)
        result[key] = {
            "max_growth": round(grown[worst], 1) if worst else 0.0,
            "worst": worst,
            "epochs": len(by_tree[worst]) if worst else 0,
        }
    return result  # fmt: skip


# --------------------------------------------------------------------------------- report


def peak(samples: list[dict[str, float]], key: str) -> float:
    return max((sample[key] for sample in samples), default=0.0)


def report(soak: Soak, checked: dict[str, Any]) -> dict[str, Any]:
    assert soak.proxy is not None
    kills = Counter(a.event for a in soak.attempts if a.event in ("job", "rank", "worker"))
    resumes = soak.attempts[1:]
    elastic = sum(1 for prev, a in zip(soak.attempts, resumes, strict=False) if a.layout != prev.layout)
    hits = soak.proxy.stats
    faults = {
        "cut_connections": hits["dropped"], "503_answers": hits["rejected"],
        "stalled_connections": hits["stalled"], "refused_connections": hits["refused"],
        "slow_windows": soak.faults["slow"],
        "hung_server": sum(1 for a in soak.attempts if a.event == "hang"),
    }  # fmt: skip
    return {
        "seed": soak.args.seed, "duration_s": round(time.monotonic() - soak.started, 1),
        "layout": BASE_LAYOUT, "batch_size": BATCH_SIZE,
        "save_every": SAVE_EVERY, "read_timeout_s": READ_TIMEOUT_S, "kills": dict(kills),
        "num_kills": sum(kills.values()), "resumes": len(resumes), "elastic_resumes": elastic,
        "faults_armed": dict(soak.faults), "faults_injected": faults, "num_faults": sum(faults.values()),
        "peak_job_rss_mb": peak(soak.samples, "rss_mb"),
        "peak_process_rss_mb": peak(soak.samples, "max_process_rss_mb"),
        "peak_fds": peak(soak.samples, "fds"), "peak_threads": peak(soak.samples, "threads"),
        "peak_job_shm_entries": peak(soak.samples, "shm_job_entries"),
        "attempts": [asdict(a) for a in soak.attempts], **checked, "errors": soak.errors,
        "samples": soak.samples[:: max(len(soak.samples) // MAX_SAMPLES_KEPT, 1)],
    }  # fmt: skip


def summary_line(result: dict[str, Any]) -> str:
    return (
        f"soak: {result.get('samples_checked', 0)} samples checked over {len(result.get('epochs', []))} "
        f"epochs, {result['num_kills']} kills, {result['resumes']} resumes ({result['elastic_resumes']} "
        f"elastic), {result['num_faults']} faults injected, {result.get('lost', 0)} lost, "
        f"{result.get('repeated', 0)} repeated, peak RSS {result['peak_job_rss_mb']:.0f} MB"
    )


# ----------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="run this long, then finish the epoch under way (default: the short soak)",
    )
    parser.add_argument("--epochs", type=int, default=5, help="the short soak's epochs")
    parser.add_argument("--events", type=int, default=5, help="the short soak's kills and hangs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results JSON (benchmarks/results/soak.json; plots: scripts/plot_bench.py)",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="work in this folder and keep it (ledgers, logs)"
    )
    return parser.parse_args(argv)  # fmt: skip


def next_event(soak: Soak, rng: random.Random, planned: list[Event], deadline: float) -> Event | None:
    """The short soak's planned events in turn; a timed run's drawn one by one until 2 minutes before
    its deadline."""
    if soak.args.minutes is None:
        return planned.pop(0) if planned else None
    if time.monotonic() > deadline - 120:
        return None
    return plan_events(rng, 4, 30, 600)[rng.randrange(4)]  # up to ~10 epochs: RSS growth shows


def drive(soak: Soak, state: dict[str, Any]) -> None:
    """Starts the job again and again from its last checkpoint until it completes (or breaks)."""
    rng = random.Random(soak.args.seed)
    deadline = soak.started + 60 * (soak.args.minutes or 0)
    planned = plan_events(rng, soak.args.events, 10, 40) if soak.args.minutes is None else []
    layout = BASE_LAYOUT
    latest = soak.folder / "ckpt" / "latest.json"
    while True:
        head = json.loads(latest.read_text()) if latest.exists() else {"step": 0, "epoch": 0}
        attempt = Attempt(len(soak.attempts), layout, head["step"], head["epoch"])
        soak.attempts.append(attempt)
        event = next_event(soak, rng, planned, deadline)
        run_attempt(soak, attempt, event, state, deadline)
        shown = f"{attempt.outcome} after {attempt.duration_s} s"
        print(f"soak: attempt {attempt.index} {attempt.layout}: {shown}", file=sys.stderr, flush=True)
        if event is None or attempt.outcome in ("completed", "stuck", "failed"):
            return
        layout = event.layout


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="lerobot-wds-soak-"))
    shutil.rmtree(folder, ignore_errors=True)
    for sub in ("ledger", "logs", "ckpt"):
        (folder / sub).mkdir(parents=True)
    soak = Soak(args, folder)
    server = start_storage(soak)
    state: dict[str, Any] = {}
    threads = [
        threading.Thread(target=monitor, args=(soak, state), daemon=True),
        threading.Thread(target=inject_faults, args=(soak, random.Random(args.seed + 1)), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        drive(soak, state)
        soak.done.set()
        checked = check_ledger(soak)
    finally:  # also on Ctrl-C: no process of the soak is left behind
        soak.done.set()
        for thread in threads:
            thread.join()
        kill_all(state.get("ranks") or [])
        assert soak.proxy is not None
        soak.proxy.close()
        server.kill()
    result = report(soak, checked)
    if args.out:
        write_record(args.out, result)
    for error in soak.errors:
        print(f"soak error: {error}", file=sys.stderr)
    print(summary_line(result))
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if soak.errors else 0


if __name__ == "__main__":
    sys.exit(main())
