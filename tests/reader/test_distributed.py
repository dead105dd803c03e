"""A real multi-process run: 2 ranks (torch.distributed, gloo on 127.0.0.1) x 2 DataLoader workers."""

from __future__ import annotations

import json
import os
import socket
from collections import Counter
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from lerobot_wds import ShardedLeRobotDataset
from lerobot_wds.reader import elastic_state
from lerobot_wds.reader.order import WorkerInfo, plan_slot

WORLD_SIZE = 2


def run_rank(rank: int, url: str, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        dataset = ShardedLeRobotDataset(url, seed=11)  # rank and world size from torch.distributed
        indices, num_batches = [], 0
        for epoch in range(2):
            dataset.set_epoch(epoch)
            for batch in DataLoader(dataset, batch_size=16, num_workers=2):
                indices.append([epoch, batch["index"].tolist()])
                num_batches += 1
        counts = [torch.tensor([num_batches]) for _ in range(WORLD_SIZE)]
        dist.all_gather(
            counts, torch.tensor([num_batches])
        )  # a rank with fewer batches would hang here in DDP
        Path(out_dir, f"rank{rank}.json").write_text(
            json.dumps({"batches": indices, "all_counts": [int(c) for c in counts]})
        )
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_ranks_two_workers_cover_each_epoch(converted: dict[str, str], tmp_path: Path) -> None:
    url = converted["multi"]
    dataset = ShardedLeRobotDataset(url)
    mp.spawn(run_rank, args=(url, free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    assert results[0]["all_counts"] == results[1]["all_counts"]
    assert len(results[0]["batches"]) == len(results[1]["batches"])  # equal batch counts: DDP does not hang
    for epoch in range(2):
        per_rank = [Counter(i for e, batch in r["batches"] if e == epoch for i in batch) for r in results]
        union = per_rank[0] + per_rank[1]
        assert set(union) == set(range(1852))  # every frame of the epoch
        planned = [
            plan_slot(dataset.entries, WorkerInfo(rank=r, world_size=2, worker=w, num_workers=2), seed=11,
                      epoch=epoch, shuffle=True).num_repeated
            for r in range(2) for w in range(2)
        ]  # fmt: skip
        assert sum(union.values()) - 1852 == sum(planned)  # only the padding that equalises the ranks
        assert sum(per_rank[0].values()) == sum(per_rank[1].values())
    orders = [[i for e, batch in results[0]["batches"] if e == epoch for i in batch] for epoch in range(2)]
    assert orders[0] != orders[1]  # set_epoch reshuffles


def save_rank(rank: int, url: str, port: int, out_dir: str, num_batches: int) -> None:
    """A rank of a 2-rank run: takes ``num_batches`` batches and saves its loader state (as a trainer)."""
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        dataset = ShardedLeRobotDataset(url, seed=11)  # rank and world size from torch.distributed
        loader = StatefulDataLoader(dataset, batch_size=16, num_workers=2)
        iterator = iter(loader)
        head = [next(iterator)["index"].tolist() for _ in range(num_batches)]
        dist.barrier()
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps({"head": head, "state": loader.state_dict()}))
        del iterator
    finally:
        dist.destroy_process_group()


def test_saved_at_two_ranks_resumes_at_one(converted: dict[str, str], tmp_path: Path) -> None:
    url = converted["multi"]
    mp.spawn(save_rank, args=(url, free_port(), str(tmp_path), 20), nprocs=WORLD_SIZE, join=True)
    saved = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    head = [i for rank in saved for batch in rank["head"] for i in batch]
    assert len(head) == 2 * 20 * 16
    dataset = ShardedLeRobotDataset(url, seed=11, rank=0, world_size=1)
    dataset.load_state_dict(elastic_state([rank["state"] for rank in saved]))
    rest = [i for batch in DataLoader(dataset, batch_size=16, num_workers=2) for i in batch["index"].tolist()]
    assert sorted(head + rest) == list(range(1852))  # every frame once: 1852 = 2 * 926, no padding
    # rank 0's state alone gives the same rest (DDP lockstep)
    assert elastic_state([saved[0]["state"]]) == elastic_state([rank["state"] for rank in saved])
