"""Train a small policy on a weighted mixture of converted datasets, with the loss logged per source.

    python examples/train_mixture.py                                  # converts two demo datasets first
    python examples/train_mixture.py --urls out/a s3://bucket/b --weights 0.7 0.3 --steps 200

Each source is a ``ShardedLeRobotDataset`` (its own episode pool, windows and decode); the
``MixedDataset`` picks which source yields each sample, in exact proportions per DataLoader worker, and
tags every item with ``dataset_index`` and ``dataset_name``. The policy (an MLP on
``observation.state`` -> ``action``) is normalised with the mixture's aggregated stats
(``mixture.meta.stats``, as LeRobot's ``aggregate_stats``); ``dataset_index`` splits the loss by source.

Without ``--urls`` the script converts the ``multi`` test fixture as two datasets (episodes 0-11 and
12-23) into a temporary folder: the test fixtures each have another fps (30, 15, 10), and a mixture
refuses sources that disagree on fps.

Prints one JSON line per step: ``{"step", "loss", "loss_by_source": {name: mean loss}}``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from lerobot_wds import ConvertConfig, MixedDataset, ShardedLeRobotDataset, convert

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "data" / "multi"


def demo_urls(folder: Path) -> list[str]:
    """The ``multi`` fixture converted as two datasets (two halves of its episodes)."""
    urls = []
    for name, episodes in (("multi-a", range(12)), ("multi-b", range(12, 24))):
        convert(str(FIXTURE), str(folder / name), ConvertConfig(episodes=tuple(episodes)))
        urls.append(str(folder / name))
    return urls


def build_mixture(urls: Sequence[str], weights: Sequence[float], args: argparse.Namespace) -> MixedDataset:
    # uint8 frames: this policy reads no camera, and uint8 is the cheapest way to carry them along.
    sources = [ShardedLeRobotDataset(url, seed=args.seed, return_uint8=True) for url in urls]
    return MixedDataset(sources, weights, seed=args.seed, samples_per_epoch=args.samples_per_epoch)


class StatePolicy(nn.Module):
    """Normalised ``observation.state`` -> normalised ``action`` (stats from the mixture's meta)."""

    def __init__(self, stats: dict[str, dict[str, object]]) -> None:
        super().__init__()
        for key, name in (("observation.state", "state"), ("action", "action")):
            self.register_buffer(f"{name}_mean", torch.as_tensor(stats[key]["mean"], dtype=torch.float32))
            self.register_buffer(
                f"{name}_std", torch.as_tensor(stats[key]["std"], dtype=torch.float32) + 1e-6
            )
        dim_in, dim_out = len(self.state_mean), len(self.action_mean)
        self.net = nn.Sequential(nn.Linear(dim_in, 64), nn.ReLU(), nn.Linear(64, dim_out))

    def loss_per_sample(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        state = (batch["observation.state"] - self.state_mean) / self.state_std
        target = (batch["action"] - self.action_mean) / self.action_std
        return ((self.net(state) - target) ** 2).mean(dim=1)


def train(mixture: MixedDataset, args: argparse.Namespace) -> None:
    policy = StatePolicy(mixture.meta.stats)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    loader = DataLoader(mixture, batch_size=args.batch_size, num_workers=args.num_workers)
    names = mixture.meta.dataset_names
    step, epoch = 0, 0
    while step < args.steps:
        mixture.set_epoch(epoch)
        for batch in loader:
            losses = policy.loss_per_sample(batch)
            loss = losses.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            losses = losses.detach()
            by_source = {
                names[i]: round(float(losses[batch["dataset_index"] == i].mean()), 5)
                for i in batch["dataset_index"].unique().tolist()
            }
            print(json.dumps({"step": step, "loss": round(float(loss), 5), "loss_by_source": by_source}))
            if step == args.steps:
                return
        epoch += 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--urls", nargs="*", default=[], help="converted datasets (default: two demo ones)")
    parser.add_argument("--weights", nargs="*", type=float, default=[], help="one per URL (default: equal)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--samples-per-epoch", type=int, default=None, help="default: the sources' frames")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="train-mixture-") as folder:
        urls = args.urls or demo_urls(Path(folder))
        weights = args.weights or [1.0] * len(urls)
        train(build_mixture(urls, weights, args), args)


if __name__ == "__main__":
    main()
