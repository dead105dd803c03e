"""Train a tiny policy on a streamed lerobot-wds dataset with accelerate, with a resumable loader.

    accelerate launch --multi_gpu --num_processes 2 examples/train_accelerate.py --url out/demo/tiny
    accelerate launch ... examples/train_accelerate.py --url ... --dummy     # loader throughput per rank
    accelerate launch ... examples/train_accelerate.py --url ... --resume    # continue from --checkpoint-dir

(`--multi_gpu` only selects accelerate's torchrun launcher: `Accelerator(cpu=True)` runs the ranks on
the CPU with the gloo backend, as the test does; on GPUs drop `cpu=True`.)

The dataset shards itself by rank (read from torch.distributed) and DataLoader worker, so the loader is
NOT passed to `accelerator.prepare`: only the model and the optimizer are. Every `--save-every` steps
each rank saves its model, optimizer and `StatefulDataLoader.state_dict()`; `--resume` restores them
and continues with exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn
from torchdata.stateful_dataloader import StatefulDataLoader

from lerobot_wds import ShardedLeRobotDataset

CHUNK = 8  # action steps predicted per sample


class TinyPolicy(nn.Module):
    """Current state + a pooled camera frame -> the next CHUNK actions."""

    def __init__(self, state_dim: int, action_dim: int) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.net = nn.Sequential(
            nn.Linear(state_dim + 3 * 16, 128), nn.ReLU(), nn.Linear(128, CHUNK * action_dim)
        )

    def forward(self, state: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        pooled = nn.functional.adaptive_avg_pool2d(image.float() / 255.0, 4).flatten(
            1
        )  # uint8 -> [0, 1] here
        return self.net(torch.cat([state, pooled], dim=1)).view(-1, CHUNK, self.action_dim)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="a converted dataset (local path or fsspec URL)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("out/checkpoints"))
    parser.add_argument("--save-every", type=int, default=10)
    parser.add_argument("--stop-after", type=int, default=None, help="exit after this step (a preemption)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--dummy", action="store_true", help="no model: measure loader samples/s per rank")
    parser.add_argument("--log", type=Path, default=None, help="write the batches' indices per rank here")
    return parser.parse_args()


def make_loader(args: argparse.Namespace) -> tuple[ShardedLeRobotDataset, StatefulDataLoader]:
    probe = ShardedLeRobotDataset(args.url)
    dataset = ShardedLeRobotDataset(
        args.url,
        delta_timestamps={"action": [i / probe.fps for i in range(CHUNK)]},
        seed=0,
        return_uint8=True,  # normalise on the accelerator, not in the loader
        frame_order="forward",
    )
    return dataset, StatefulDataLoader(dataset, batch_size=args.batch_size, num_workers=args.num_workers)


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)  # the same initial model in every run, so a resumed run matches exactly
    accelerator = Accelerator(cpu=True)
    dataset, loader = make_loader(args)
    camera = dataset.camera_keys[0]
    state_dim = dataset.features["observation.state"]["shape"][0]
    action_dim = dataset.features["action"]["shape"][0]
    model = TinyPolicy(state_dim, action_dim)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer = accelerator.prepare(model, optimizer)
    step, epoch = 0, 0
    checkpoint = args.checkpoint_dir / f"rank{accelerator.process_index}.pt"
    if args.resume:
        saved = torch.load(checkpoint, weights_only=True)
        accelerator.unwrap_model(model).load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        step, epoch = saved["step"], saved["epoch"]
        dataset.set_epoch(epoch)
        loader.load_state_dict(saved["loader"])
    log: list[dict[str, Any]] = []
    started, samples = time.perf_counter(), 0
    while step < args.steps:
        dataset.set_epoch(epoch)
        for batch in loader:
            step += 1
            samples += len(batch["index"])
            loss = torch.tensor(0.0)
            if not args.dummy:
                prediction = model(batch["observation.state"], batch[camera])
                mask = ~batch["action_is_pad"]
                loss = ((prediction - batch["action"]) ** 2).mean(-1)[mask].mean()
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
            log.append(
                {"step": step, "epoch": epoch, "index": batch["index"].tolist(), "loss": float(loss.detach())}
            )
            if step % args.save_every == 0:
                args.checkpoint_dir.mkdir(parents=True, exist_ok=True)
                state = {"model": accelerator.unwrap_model(model).state_dict(), "loader": loader.state_dict()}
                state |= {"optimizer": optimizer.state_dict(), "step": step, "epoch": epoch}
                torch.save(state, checkpoint)
            if step >= args.steps or step == args.stop_after:
                break
        else:
            epoch += 1
            continue
        break
    elapsed = time.perf_counter() - started
    summary = {"rank": accelerator.process_index, "steps": step, "samples_per_s": round(samples / elapsed, 1)}
    print(json.dumps(summary))
    if args.log is not None:
        args.log.mkdir(parents=True, exist_ok=True)
        (args.log / f"rank{accelerator.process_index}.json").write_text(json.dumps(log))


if __name__ == "__main__":
    main()
