"""DataLoader workers exit within seconds when their training process dies without cleanup (SIGKILL).

torch's own watchdog ends a worker only between two fetches; a worker whose main thread is held (a
stalled read, a slow transform: here a transform that blocks once the trainer says so) outlives the
trainer for as long as it is held. Ours watches from a thread of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TRAINER = """
import json, os, sys, time
import psutil, torch
from lerobot_wds import ShardedLeRobotDataset
url, loader_type, mode, held = sys.argv[1:5]

def transform(frames):
    if os.path.exists(held):  # the workers' main threads are held from here on
        time.sleep(120)
    return frames

probe = ShardedLeRobotDataset(url)
camera = probe.video_keys[0]
dataset = ShardedLeRobotDataset(
    url, delta_timestamps={"action": [0.0, 1 / probe.fps], camera: [-1 / probe.fps, 0.0]}, seed=0,
    batch_size=8 if mode == "batch" else None, image_transforms=transform,
)
batch_size = None if mode == "batch" else 8
if loader_type == "stateful":
    from torchdata.stateful_dataloader import StatefulDataLoader
    loader = StatefulDataLoader(dataset, batch_size=batch_size, num_workers=2)
elif loader_type == "webloader":
    import webdataset as wds
    loader = wds.WebLoader(dataset, batch_size=batch_size, num_workers=2)
else:
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=2, persistent_workers=loader_type == "persistent"
    )
iterator = iter(loader)
for _ in range(3):
    next(iterator)
open(held, "w").close()
print(json.dumps([child.pid for child in psutil.Process().children()]), flush=True)
time.sleep(300)  # killed here, mid-epoch, the workers held in the transform
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) is gone for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize(
    ("loader_type", "mode"),
    [("dataloader", "item"), ("dataloader", "batch"), ("stateful", "item"), ("webloader", "batch"),
     ("persistent", "item")],
)  # fmt: skip
def test_workers_exit_when_the_training_process_is_killed(
    converted: dict[str, str], loader_type: str, mode: str, tmp_path: Path
) -> None:
    trainer = subprocess.Popen(
        [sys.executable, "-c", TRAINER, converted["g1"], loader_type, mode, str(tmp_path / "held")],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert trainer.stdout is not None
        workers = json.loads(trainer.stdout.readline())
        assert len(workers) == 2
        assert all(alive(pid) for pid in workers)
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = [pid for pid in workers if alive(pid)]
    finally:
        os.killpg(trainer.pid, signal.SIGKILL)  # whatever is left of the trainer's session
    assert not survivors, f"workers {survivors} outlived their training process by 15 s"
