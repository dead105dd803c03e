"""One rank of the soak's training job (started by scripts/soak.py, one process per rank).

    python scripts/soak_rank.py JOB_JSON RANK

Joins a gloo group on 127.0.0.1, resumes from the job's last committed checkpoint (exactly with the
same ranks x workers, through ``elastic_state`` with another layout), then trains: one all-reduce per
batch (DDP's lockstep), a ledger line per batch, a checkpoint every ``save_every`` steps and at every
epoch's end. A checkpoint is committed in two phases: every rank writes its part, a barrier, then rank 0
renames ``latest.json`` onto it, so a kill at any moment leaves the previous one whole.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import torch
import torch.distributed as dist
from torchdata.stateful_dataloader import StatefulDataLoader

from lerobot_wds import RetryPolicy, ShardedLeRobotDataset
from lerobot_wds.reader import elastic_state


def write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def load_checkpoint(folder: Path) -> dict[str, Any] | None:
    """The last committed checkpoint: its step, epoch, layout and every old rank's loader state."""
    latest = folder / "latest.json"
    if not latest.exists():
        return None
    head = json.loads(latest.read_text())
    parts = [
        json.loads((folder / f"step{head['step']}-rank{r}.json").read_text()) for r in range(head["ranks"])
    ]
    return {**head, "states": [part["state"] for part in parts]}


def save_checkpoint(folder: Path, job: dict[str, Any], rank: int, step: int, epoch: int, state: Any) -> None:
    write_json(folder / f"step{step}-rank{rank}.json", {"state": state})
    dist.barrier()
    if rank == 0:
        head = {"step": step, "epoch": epoch, "ranks": job["world_size"], "workers": job["num_workers"]}
        write_json(folder / "latest.json", head)
        for old in folder.glob("step*-rank*.json"):  # older checkpoints: keep the folder small
            if int(old.name[4:].partition("-")[0]) < step - 2 * job["save_every"]:
                old.unlink(missing_ok=True)


def process_stats() -> dict[str, float]:
    """RSS (MB), open fds and threads of this rank and its DataLoader workers."""
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    stats = {"rss_mb": 0.0, "fds": 0.0, "threads": 0.0, "processes": float(len(procs))}
    for proc in procs:
        try:
            stats["rss_mb"] += proc.memory_info().rss / 2**20
            stats["fds"] += proc.num_fds()
            stats["threads"] += proc.num_threads()
        except psutil.NoSuchProcess:
            continue
    return stats


def run(job: dict[str, Any], rank: int) -> None:
    folder = Path(job["folder"])
    world_size, num_workers = job["world_size"], job["num_workers"]
    dataset = ShardedLeRobotDataset(
        job["url"],
        delta_timestamps={"action": [0.0, 1 / job["fps"]]},
        seed=job["seed"],
        episode_pool_size=4,
        rank=rank,
        world_size=world_size,
        storage_options=job["storage_options"],
        retry=RetryPolicy(initial_backoff_s=0.1, max_backoff_s=2.0, timeout_s=job["read_timeout_s"]),
    )
    checkpoint = load_checkpoint(folder / "ckpt")
    epoch, step, loader_state = 0, 0, None
    if checkpoint is not None:
        epoch, step = checkpoint["epoch"], checkpoint["step"]
        mid_epoch = checkpoint["states"][0] is not None
        same_layout = (checkpoint["ranks"], checkpoint["workers"]) == (world_size, num_workers)
        if mid_epoch and same_layout:
            loader_state = checkpoint["states"][rank]
        elif mid_epoch:  # elastic: this rank's share of what the old layout had not handed out
            dataset.load_state_dict(elastic_state(checkpoint["states"]))
    loader = StatefulDataLoader(
        dataset, batch_size=job["batch_size"], num_workers=num_workers, persistent_workers=num_workers > 0
    )
    if loader_state is not None:
        loader.load_state_dict(loader_state)
    ledger = (folder / "ledger" / f"a{job['attempt']}-r{rank}.jsonl").open("a", buffering=1)
    one = torch.ones(1)
    while epoch < job["max_epochs"]:
        dataset.set_epoch(epoch)
        num_batches = 0
        for batch in loader:
            step += 1
            num_batches += 1
            dist.all_reduce(one)  # DDP's lockstep: a rank short of batches would hang here
            record = {"a": job["attempt"], "r": rank, "e": epoch, "s": step, "i": batch["index"].tolist(),
                      "ep": batch["episode_index"].tolist(), "f": batch["frame_index"].tolist()}  # fmt: skip
            ledger.write(json.dumps(record) + "\n")
            if step % job["save_every"] == 0:
                save_checkpoint(folder / "ckpt", job, rank, step, epoch, loader.state_dict())
        counts = [torch.zeros(1, dtype=torch.int64) for _ in range(world_size)]
        dist.all_gather(counts, torch.tensor([num_batches]))
        end = {"kind": "epoch_end", "a": job["attempt"], "r": rank, "e": epoch, "s": step,
               "all": [int(c) for c in counts], **process_stats()}  # fmt: skip
        ledger.write(json.dumps(end) + "\n")
        epoch += 1
        save_checkpoint(folder / "ckpt", job, rank, step, epoch, None)
        stop = torch.tensor([float((folder / "stop").exists())])
        dist.broadcast(stop, 0)  # every rank stops after the same epoch
        if stop.item():
            break
    ledger.close()


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    rank = int(argv[1])
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(job["port"])
    dist.init_process_group(
        "gloo",
        rank=rank,
        world_size=job["world_size"],
        timeout=timedelta(seconds=job["collective_timeout_s"]),
    )
    try:
        run(job, rank)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
