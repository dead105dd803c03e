"""``python -m lerobot_wds.lerobot_train``: LeRobot's own trainer on converted shards.

Without LeRobot: the endless per-reader stream it feeds to ``lerobot-train``'s ``cycle(dataloader)``
(epoch after epoch, reshuffled), the data position a checkpoint's step implies (resume from any step
gives the uninterrupted batches), LeRobot's eval split rule, the command line. With LeRobot
(``LEROBOT_VENV``): ``lerobot-train`` itself trains a small ACT, checkpoints, and resumes with the same
batches as the uninterrupted run.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import DATA
from torch.utils.data import DataLoader

from lerobot_wds import ConvertConfig, ShardedLeRobotDataset, convert
from lerobot_wds.lerobot_train import (
    TrainStream,
    batches_handed_out,
    parse_arguments,
    split_episodes_per_task,
)
from lerobot_wds.reader.order import WorkerInfo

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("lerobot_train") / "tiny")
    convert(str(DATA / "tiny"), url, ConvertConfig())
    return url


def batch_indices(
    url: str, *, start: int, count: int, batch_size: int, num_workers: int, **options: Any
) -> list[list[int]]:
    dataset = ShardedLeRobotDataset(
        url, delta_timestamps={"action": [0.0, 1 / 30]}, return_uint8=True, **options
    )
    stream = TrainStream(dataset, batch_size=batch_size, start_batches=start)
    loader = DataLoader(stream, batch_size=batch_size, num_workers=num_workers)
    return [batch["index"].tolist() for batch in itertools.islice(loader, count)]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_from_any_step_gives_the_uninterrupted_batches(tiny: str, num_workers: int) -> None:
    # 224 frames, batches of 16: an epoch ends mid-batch (at 112 per worker with 2 workers), so the
    # later cut points resume inside the second epoch.
    full = batch_indices(tiny, start=0, count=24, batch_size=16, num_workers=num_workers)
    for step in (1, 5, 8, 15):
        resumed = batch_indices(tiny, start=step, count=24 - step, batch_size=16, num_workers=num_workers)
        assert resumed == full[step:], step


def test_each_reader_streams_its_epochs_one_after_another(tiny: str) -> None:
    dataset = ShardedLeRobotDataset(tiny, return_uint8=True)
    who = WorkerInfo(rank=0, world_size=1, worker=0, num_workers=1)
    endless = [int(item["index"]) for item in itertools.islice(TrainStream(dataset, batch_size=4), 2 * 224)]
    epoch0 = [int(item["index"]) for item in dataset._open_stream(who, epoch=0)]
    epoch1 = [int(item["index"]) for item in dataset._open_stream(who, epoch=1)]
    assert endless == epoch0 + epoch1
    assert sorted(epoch0) == sorted(epoch1) == list(range(224))  # every frame once per epoch
    assert epoch0 != epoch1  # reshuffled


def test_the_dataloader_hands_out_its_workers_batches_in_turn() -> None:
    assert [batches_handed_out(7, w, 3) for w in range(3)] == [3, 2, 2]
    assert [batches_handed_out(0, w, 2) for w in range(2)] == [0, 0]
    assert batches_handed_out(5, 0, 1) == 5
    assert batches_handed_out(1, 2, 3) == 0


def test_eval_split_holds_out_the_last_episodes_of_each_task(tiny: str) -> None:
    dataset = ShardedLeRobotDataset(tiny)
    tasks = {e.episode_index: e.task_indices[0] for e in dataset.entries}
    train, held_out = split_episodes_per_task(dataset, 0.3)
    assert sorted(train + held_out) == sorted(tasks)
    for task in set(tasks.values()):
        episodes = sorted(e for e, t in tasks.items() if t == task)
        n_eval = -(-len(episodes) * 3 // 10)  # ceil, as LeRobot's math.ceil(n * eval_split)
        assert [e for e in held_out if tasks[e] == task] == episodes[len(episodes) - n_eval :]
    with pytest.raises(ValueError, match="leaves 0 training episodes"):
        split_episodes_per_task(dataset, 1.0)


def test_command_line_keeps_lerobot_train_arguments_and_takes_reader_options() -> None:
    url, options, rest = parse_arguments(
        ["--policy.type=act", "--dataset.url=s3://b/d", "--wds.episode_pool_size=8",
         "--wds.frame_order=forward", "--steps=3"]
    )  # fmt: skip
    assert url == "s3://b/d"
    assert options == {"episode_pool_size": 8, "frame_order": "forward"}
    assert rest == ["--policy.type=act", "--steps=3"]
    with pytest.raises(ValueError, match=r"unknown reader option '--wds\.seed=3'"):
        parse_arguments(["--wds.seed=3"])  # the seed is lerobot-train's --seed
    with pytest.raises(ValueError, match="unknown reader option"):
        parse_arguments(["--wds.no_such_option=1"])


# A driver that runs lerobot-train through our entry point and logs each batch's `index` as the trainer
# takes it (by wrapping lerobot-train's own `cycle`), so that two runs can be compared batch by batch.
DRIVER = """
import json, sys
import torchvision_shim  # noqa: F401  (the LeRobot venv's CPU torchvision stand-in)
from lerobot.scripts import lerobot_train
from lerobot_wds.lerobot_train import main

def logging_cycle(loader, cycle=lerobot_train.cycle):
    with open(LOG, "a") as log:
        for batch in cycle(loader):
            log.write(json.dumps(batch["index"].tolist()) + "\\n")
            log.flush()
            yield batch

if __name__ == "__main__":  # DataLoader workers started by spawn import this file again
    LOG = sys.argv.pop(1)
    lerobot_train.cycle = logging_cycle
    main()
"""

SMALL_ACT = [
    "--policy.type=act", "--policy.device=cpu", "--policy.push_to_hub=false",
    "--policy.pretrained_backbone_weights=null", "--policy.dim_model=64", "--policy.dim_feedforward=128",
    "--policy.n_heads=4", "--policy.n_encoder_layers=1", "--policy.chunk_size=10",
    "--policy.n_action_steps=10",
    "--wandb.enable=false", "--log_freq=1",
]  # fmt: skip


@pytest.mark.lerobot
@pytest.mark.skipif(not os.environ.get("LEROBOT_VENV"), reason="LEROBOT_VENV (a LeRobot venv) not given")
def test_lerobot_train_trains_checkpoints_and_resumes_with_the_same_batches(
    tmp_path: Path, tiny: str
) -> None:
    python = Path(os.environ["LEROBOT_VENV"]) / "bin/python"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

    def train(log: Path, *arguments: str) -> str:
        command = [str(python), str(driver), str(log), *arguments]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
        assert completed.returncode == 0, completed.stderr[-4000:]
        return completed.stderr

    # 224 frames, 2 workers, batches of 32: 10 steps cross into the second epoch.
    out = tmp_path / "out"
    output = train(
        tmp_path / "full.jsonl", f"--dataset.url={tiny}", *SMALL_ACT,
        "--steps=10", "--batch_size=32", "--num_workers=2", "--save_freq=4", f"--output_dir={out}",
    )  # fmt: skip
    assert "step:10 " in output
    assert "loss:" in output
    full = [json.loads(line) for line in (tmp_path / "full.jsonl").read_text().splitlines()]
    assert [len(batch) for batch in full] == [32] * 10
    seed = json.loads((out / "checkpoints/000004/pretrained_model/train_config.json").read_text())["seed"]
    assert full == batch_indices(tiny, start=0, count=10, batch_size=32, num_workers=2, seed=seed)
    saved = json.loads((out / "checkpoints/000004/training_state/lerobot_wds.json").read_text())
    assert (saved["url"], saved["num_workers"], saved["batch_size"]) == (tiny, 2, 32)

    # Resume from the step-4 checkpoint: no --dataset.url (the checkpoint has it); batches 5..10 again.
    shutil.rmtree(out / "checkpoints/000008")
    shutil.rmtree(out / "checkpoints/000010")
    (out / "checkpoints/last").unlink()
    (out / "checkpoints/last").symlink_to("000004")
    config = out / "checkpoints/last/pretrained_model/train_config.json"
    train(tmp_path / "resumed.jsonl", "--resume=true", f"--config_path={config}", "--steps=10")
    resumed = [json.loads(line) for line in (tmp_path / "resumed.jsonl").read_text().splitlines()]
    assert resumed == full[4:]

    # Another worker count cannot continue that position: refused, naming it.
    completed = subprocess.run(
        [str(python), str(driver), str(tmp_path / "other.jsonl"), "--resume=true", f"--config_path={config}",
         "--steps=10", "--num_workers=1"],
        capture_output=True, text=True, timeout=600, env=environment,
    )  # fmt: skip
    assert completed.returncode != 0
    assert "saved with num_workers=2; this run has num_workers=1" in completed.stderr


def test_items_match_what_lerobot_train_would_be_given(tiny: str) -> None:
    """The trainer gets LeRobot's training semantics: uint8 frames, windows with their pad masks."""
    dataset = ShardedLeRobotDataset(tiny, delta_timestamps={"action": [0.0, 1 / 30]}, return_uint8=True)
    item = next(iter(TrainStream(dataset, batch_size=4)))
    reference = dataset.item_at(int(item["index"]))
    for key, value in reference.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(item[key], value), key
    assert item["observation.images.front"].dtype == torch.uint8


@pytest.mark.lerobot
@pytest.mark.skipif(not os.environ.get("LEROBOT_VENV"), reason="LEROBOT_VENV (a LeRobot venv) not given")
def test_lerobot_train_on_two_processes_reads_each_rank_its_own_part(tmp_path: Path, tiny: str) -> None:
    """``accelerate launch`` with 2 CPU processes (gloo): Accelerate leaves our loader alone, so each rank
    trains on its own reader's batches (not rank 0's batches dispatched, nor a re-sharded copy)."""
    accelerate = Path(os.environ["LEROBOT_VENV"]) / "bin/accelerate"
    driver = tmp_path / "driver.py"
    per_rank = DRIVER.replace("open(LOG,", 'open(LOG + os.environ["RANK"],')
    driver.write_text(per_rank.replace("import json,", "import os, json,"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", str(port),
        str(driver), str(tmp_path / "rank"), f"--dataset.url={tiny}", *SMALL_ACT, "--steps=3",
        "--batch_size=8", "--num_workers=1", "--save_freq=3", f"--output_dir={tmp_path / 'out'}", "--seed=5",
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "Effective batch size: 8 x 2 = 16" in completed.stderr
    for rank in range(2):
        seen = [json.loads(line) for line in (tmp_path / f"rank{rank}").read_text().splitlines()]
        expected = batch_indices(
            tiny, start=0, count=3, batch_size=8, num_workers=1, seed=5, rank=rank, world_size=2
        )
        assert seen == expected, rank


@pytest.mark.lerobot
@pytest.mark.skipif(not os.environ.get("LEROBOT_VENV"), reason="LEROBOT_VENV (a LeRobot venv) not given")
def test_accelerate_launch_module_form_with_an_eval_split(tmp_path: Path, tiny: str) -> None:
    """README's form, ``accelerate launch ... -m lerobot_wds.lerobot_train``, with LeRobot's held-out
    evaluation: per task the last episode of tiny's two is held out, and lerobot-train logs an eval loss
    over them every ``eval_steps``."""
    accelerate = Path(os.environ["LEROBOT_VENV"]) / "bin/accelerate"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        str(accelerate), "launch", "--cpu", "--num_processes", "1", "--main_process_port", str(port),
        "-m", "lerobot_wds.lerobot_train", f"--dataset.url={tiny}", *SMALL_ACT, "--steps=4",
        "--batch_size=8", "--num_workers=1", "--save_freq=4", f"--output_dir={tmp_path / 'out'}",
        "--dataset.eval_split=0.5", "--eval_steps=2",
    ]  # fmt: skip
    # The LeRobot venv's torchvision needs its shim imported first; with `-m` nothing of ours runs
    # before lerobot, so a sitecustomize imports it (a real torchvision needs nothing).
    (tmp_path / "site").mkdir()
    (tmp_path / "site/sitecustomize.py").write_text("import torchvision_shim  # noqa: F401\n")
    environment = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{tmp_path / 'site'}"}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "episodes [3, 4, 5] held out for evaluation, 3 for training" in completed.stderr
    losses = re.findall(r"step (\d+): eval_loss=([0-9.]+)", completed.stderr)
    assert [step for step, _ in losses] == ["2", "4"]
    assert all(math.isfinite(float(loss)) and float(loss) > 0 for _, loss in losses)
    assert (tmp_path / "out/checkpoints/000004/training_state/lerobot_wds.json").exists()
