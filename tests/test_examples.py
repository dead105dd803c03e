"""The examples: train_webloader.py (webdataset's WebLoader over our shards, stopped and resumed);
train_accelerate.py on CPU with 2 processes (trains, checkpoints, resumes exactly);
train_mixture.py (a mixture of two converted datasets, loss per source); train_lerobot_policy.py with
LeRobot itself, when a LeRobot venv is given (LEROBOT_VENV)."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DATA

from lerobot_wds import ConvertConfig, convert

ROOT = Path(__file__).resolve().parent.parent


def launch(url: str, out: Path, *extra: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    accelerate = Path(sys.executable).parent / "accelerate"
    command = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", str(port),
        str(ROOT / "examples/train_accelerate.py"), "--url", url, "--steps", "12", "--save-every", "5",
        "--checkpoint-dir", str(out / "checkpoints"), *extra,
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]


@pytest.mark.slow
def test_train_checkpoint_and_resume_with_two_processes(tmp_path: Path) -> None:
    url = str(tmp_path / "tiny")
    convert(str(DATA / "tiny"), url, ConvertConfig())
    launch(url, tmp_path / "full", "--log", str(tmp_path / "full/log"))
    launch(url, tmp_path / "cut", "--stop-after", "7", "--log", str(tmp_path / "cut/log1"))
    launch(url, tmp_path / "cut", "--resume", "--log", str(tmp_path / "cut/log2"))
    seen = []
    for rank in range(2):
        full = json.loads((tmp_path / f"full/log/rank{rank}.json").read_text())
        resumed = json.loads((tmp_path / f"cut/log2/rank{rank}.json").read_text())
        assert [r["step"] for r in resumed] == list(range(6, 13))  # resumed from the step-5 checkpoint
        assert [r["index"] for r in resumed] == [r["index"] for r in full[5:]]  # the same batches
        assert [r["loss"] for r in resumed] == [r["loss"] for r in full[5:]]  # and the same training
        seen.append({i for r in full for i in r["index"]})
    assert not seen[0] & seen[1]  # ranks read disjoint frames


@pytest.mark.lerobot
@pytest.mark.skipif(not os.environ.get("LEROBOT_VENV"), reason="LEROBOT_VENV (a LeRobot venv) not given")
def test_lerobot_act_policy_trains_on_the_stream(tmp_path: Path) -> None:
    """LeRobot's ACT, built from ``dataset.meta`` and normalised with its stats, learns from 2 workers."""
    url = str(tmp_path / "multi")
    convert(str(DATA / "multi"), url, ConvertConfig())
    python = Path(os.environ["LEROBOT_VENV"]) / "bin/python"
    command = [python, ROOT / "examples/train_lerobot_policy.py", url, "--steps", "12", "--num-workers", "2"]
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    losses = [line["loss"] for line in lines if "loss" in line]
    assert len(losses) == 12
    assert all(math.isfinite(loss) for loss in losses)
    assert lines[-1]["mean_loss_last_quarter"] < lines[-1]["mean_loss_first_quarter"] / 2


def test_train_mixture_logs_the_loss_per_source() -> None:
    """Converts its two demo datasets, trains 3 steps at 2 workers, one loss per source in the log."""
    command = [
        sys.executable,
        str(ROOT / "examples/train_mixture.py"),
        "--steps",
        "3",
        "--weights",
        "0.7",
        "0.3",
    ]
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=environment, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3]
    assert all(math.isfinite(line["loss"]) for line in lines)
    assert {name for line in lines for name in line["loss_by_source"]} == {"multi-a", "multi-b"}


@pytest.mark.slow  # ~25 s per run on a loaded 2-core machine: two runs of 2 workers each
def test_train_webloader_stops_and_resumes(tmp_path: Path) -> None:
    """webdataset alone reads the shards: 2 workers, frames re-mixed across them, a checkpoint resumed."""
    checkpoint = tmp_path / "ckpt.pt"
    script = [
        sys.executable,
        str(ROOT / "examples/train_webloader.py"),
        "--steps",
        "6",
        "--steps-per-epoch",
        "4",
    ]
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    runs = []
    for extra in (["--stop-after", "3"], ["--resume"]):
        command = [*script, "--checkpoint", str(checkpoint), *extra]
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=300, env=environment, check=False
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        runs.append([json.loads(line) for line in completed.stdout.splitlines()])
    assert [[line["step"] for line in run] for run in runs] == [[1, 2, 3], [4, 5, 6]]
    assert all(math.isfinite(line["loss"]) for run in runs for line in run)
    assert max(line["episodes"] for run in runs for line in run) > 1  # batches mix the tiny fixture's 6
    import torch

    assert torch.load(checkpoint, weights_only=True)["step"] == 6
