"""Train LeRobot's own ACT policy on a lerobot-wds stream: LeRobot's policy, processors and
normalisation statistics, this package's loader.

    python examples/train_lerobot_policy.py out/demo/tiny --steps 30 --num-workers 2

Needs LeRobot (Python >= 3.12; on this project's machines the LeRobot 0.6.1 venv of
``../shared/tools/lerobot-venv`` plus ``pip install webdataset`` and this package on the path).
The glue is three lines: ``delta_timestamps`` from the policy's config, ``make_policy(cfg,
ds_meta=dataset.meta)`` and ``make_pre_post_processors(cfg, dataset_stats=dataset.meta.stats)``;
``dataset.meta`` reads as LeRobot's ``LeRobotDatasetMetadata`` (tests/reader/test_meta.py).
A small ACT (no pretrained backbone: nothing is downloaded) so that CPU steps take a second.
Prints one JSON line per step (loss) and a summary.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader

from lerobot_wds import ShardedLeRobotDataset


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", help="a converted dataset: local folder or fsspec URL")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--chunk-size", type=int, default=10, help="ACT's action chunk (future steps)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import contextlib

    with contextlib.suppress(ImportError):  # the LeRobot comparison venv's CPU torchvision stand-in
        import torchvision_shim  # noqa: F401
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    torch.manual_seed(args.seed)
    meta = ShardedLeRobotDataset(args.url).meta
    cfg = ACTConfig(
        device="cpu",
        pretrained_backbone_weights=None,
        chunk_size=args.chunk_size,
        n_action_steps=args.chunk_size,
        dim_model=64,
        dim_feedforward=128,
        n_heads=4,
        n_encoder_layers=1,
        latent_dim=8,
    )
    policy = make_policy(cfg, ds_meta=meta)
    preprocessor, _ = make_pre_post_processors(cfg, dataset_stats=meta.stats)
    dataset = ShardedLeRobotDataset(
        args.url,
        delta_timestamps=resolve_delta_timestamps(cfg, meta),
        batch_size=args.batch_size,
        seed=args.seed,
    )
    loader = DataLoader(dataset, batch_size=None, num_workers=args.num_workers)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    policy.train()

    losses: list[float] = []
    started = time.perf_counter()
    epoch = 0
    while len(losses) < args.steps:
        dataset.set_epoch(epoch)
        for batch in loader:
            loss, _ = policy.forward(preprocessor(batch))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            print(json.dumps({"step": len(losses), "epoch": epoch, "loss": round(losses[-1], 4)}), flush=True)
            if len(losses) == args.steps:
                break
        epoch += 1
    first, last = losses[: len(losses) // 4 or 1], losses[-(len(losses) // 4 or 1) :]
    summary = {
        "steps": len(losses),
        "seconds": round(time.perf_counter() - started, 1),
        "mean_loss_first_quarter": round(sum(first) / len(first), 4),
        "mean_loss_last_quarter": round(sum(last) / len(last), 4),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
