"""examples/train_accelerate.py on CPU with 2 processes: trains, checkpoints, resumes exactly."""

from __future__ import annotations

import json
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
