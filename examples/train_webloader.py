"""Train on converted shards with webdataset's own ``WebLoader``, as the webdataset docs teach it.

    python examples/train_webloader.py                                     # converts the `tiny` fixture
    python examples/train_webloader.py --url s3://bucket/my-dataset --camera observation.images.top
    python examples/train_webloader.py --steps 6 --stop-after 3 --checkpoint ckpt.pt   # then --resume

The shards are plain WebDataset tars, so webdataset reads them without lerobot-wds: a sample is one
episode (``meta.json``, ``rows.arrow``, one ``<camera>.mp4`` each). The pipeline, per the webdataset
docs' recipe for large-scale training:

    WebDataset(shards, resampled=True)       # each worker draws shards at random, forever
      .compose(episode_frames)               # episode -> its frames (rows + the whole video decoded)
      .shuffle(FRAMES_PER_WORKER)            # mix frames of the episodes in this worker
      .batched(WORKER_BATCH)                 # small batches cross the process boundary
    WebLoader(..., batch_size=None, num_workers=N)
      .unbatched().shuffle(N_MIX).batched(B) # re-mix across workers, then the training batch
      .with_epoch(STEPS_PER_EPOCH)           # an "epoch" is a number of batches: the stream is endless

Resume, as the docs put it for resampled pipelines: save the model and the step; a restarted run draws
new random shards (statistically equivalent, not the same batches). Nothing here is exact.

What ``ShardedLeRobotDataset`` replaces in this script (see train_accelerate.py for the same loop):
- ``resampled=True`` + ``with_epoch`` -> real epochs: each frame once per epoch, episodes split across
  ranks and workers (``set_epoch``), not sampled with replacement.
- ``.shuffle(n)`` buffers of decoded frames -> an episode pool of still-encoded bytes
  (``episode_pool_size``) with frames drawn at random from it: more mixing per MB of memory.
- decoding whole episodes -> only the frames a window needs, by index (``delta_timestamps`` windows
  with LeRobot's ``_is_pad`` masks, which this script does not have).
- approximate resume -> ``state_dict()``/``load_state_dict()`` (torchdata's ``StatefulDataLoader``):
  the resumed run sees exactly the batches the uninterrupted one would have.

Prints one JSON line per step: ``{"step", "loss", "episodes"}`` (distinct episodes in the batch).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import torch
import webdataset as wds
from torch import nn
from torchcodec.decoders import VideoDecoder

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "data" / "tiny"


def shard_urls(url: str) -> list[str]:
    """The shards a converted dataset's manifest lists (webdataset also takes a brace pattern)."""
    from lerobot_wds import read_manifest, storage

    return [storage.join(url, shard.path) for shard in read_manifest(url).shards]


def episode_frames(samples: Iterator[dict[str, Any]], camera: str) -> Iterator[dict[str, Any]]:
    """One webdataset sample (an episode) -> one dict per frame: state, action, uint8 frame (C, H, W)."""
    for sample in samples:
        rows = ipc.open_file(pa.BufferReader(sample["rows.arrow"])).read_all()
        state = torch.tensor(rows["observation.state"].to_pylist(), dtype=torch.float32)
        action = torch.tensor(rows["action"].to_pylist(), dtype=torch.float32)
        # seek_mode="exact": frames by index; the whole segment decoded once, in order
        frames = VideoDecoder(sample[f"{camera}.mp4"], seek_mode="exact")[:]
        episode_index = json.loads(sample["meta.json"])["episode_index"]
        for i in range(rows.num_rows):
            yield {"state": state[i], "action": action[i], "image": frames[i], "episode": episode_index}


def build_loader(urls: list[str], args: argparse.Namespace) -> wds.WebLoader:
    dataset = (
        wds.WebDataset(urls, resampled=True, shardshuffle=False, nodesplitter=wds.split_by_node)
        .compose(lambda samples: episode_frames(samples, args.camera))
        .shuffle(args.worker_shuffle)
        .batched(args.worker_batch_size)
    )
    loader = wds.WebLoader(dataset, batch_size=None, num_workers=args.num_workers)
    return (
        loader.unbatched().shuffle(args.mix_shuffle).batched(args.batch_size).with_epoch(args.steps_per_epoch)
    )


class Policy(nn.Module):
    """(state, frame) -> action: a linear layer over the state and a pooled 1-layer conv of the frame."""

    def __init__(self, state_dim: int, action_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=5, stride=4)
        self.head = nn.Linear(state_dim + 8, action_dim)

    def forward(self, state: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        pooled = self.conv(image.float() / 255).relu().mean(dim=(2, 3))
        return self.head(torch.cat([state, pooled], dim=1))


def train(urls: list[str], args: argparse.Namespace) -> None:
    loader = build_loader(urls, args)
    policy: Policy | None = None
    optimizer: torch.optim.Optimizer | None = None
    step = 0
    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    if args.resume and checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=True)
        step = saved["step"]
    while step < args.steps:
        for batch in loader:  # `with_epoch`: steps_per_epoch batches, then a new pass over the loader
            if policy is None or optimizer is None:
                policy = Policy(batch["state"].shape[1], batch["action"].shape[1])
                optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
                if step:  # resumed: the saved weights and optimizer state
                    policy.load_state_dict(saved["model"])
                    optimizer.load_state_dict(saved["optimizer"])
            scale = batch["action"].abs().amax(dim=0).clamp(min=1.0)  # the fixture's actions reach 1e5
            loss = ((policy(batch["state"] / scale, batch["image"]) - batch["action"] / scale) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            episodes = len(set(batch["episode"].tolist()))
            print(json.dumps({"step": step, "loss": round(loss.item(), 6), "episodes": episodes}), flush=True)
            if checkpoint is not None:
                state = {"step": step, "model": policy.state_dict(), "optimizer": optimizer.state_dict()}
                torch.save(state, checkpoint)
            if step in (args.steps, args.stop_after):
                return


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="converted dataset (default: the `tiny` fixture, converted first)")
    parser.add_argument("--camera", default="observation.images.front")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--steps-per-epoch", type=int, default=20, help="with_epoch: batches per pass")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--worker-batch-size", type=int, default=16)
    parser.add_argument("--worker-shuffle", type=int, default=200, help="frames mixed inside a worker")
    parser.add_argument("--mix-shuffle", type=int, default=500, help="frames mixed across the workers")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--checkpoint", help="file to save after each step and to --resume from")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--stop-after", type=int, help="stop after this step (to try --resume)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="train-webloader-") as folder:
        url = args.url
        if url is None:
            from lerobot_wds import ConvertConfig, convert

            url = str(Path(folder) / "tiny")
            convert(str(FIXTURE), url, ConvertConfig(shard_size_mb=0.1))  # a few shards to draw from
        train(shard_urls(url), args)


if __name__ == "__main__":
    main()
