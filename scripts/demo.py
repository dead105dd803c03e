"""The main job on the bundled sample dataset: convert `tests/data/tiny`, then stream it.

Run with `make demo` (sets everything up first). Writes to out/demo/. Converts the LeRobot v3
fixture into episode shards, verifies them, then streams shuffled batches with LeRobot-style
`delta_timestamps` windows through a DataLoader with 2 workers and prints what came out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from lerobot_wds import ConvertConfig, ShardedLeRobotDataset, convert, inspect_dataset, verify

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "data" / "tiny"  # written by LeRobot 0.6.1's LeRobotDataset writer
DEST = ROOT / "out" / "demo" / "tiny"


def main() -> int:
    result = convert(str(SOURCE), str(DEST), ConvertConfig(overwrite=True))
    manifest = result.manifest
    print(
        f"converted {SOURCE.relative_to(ROOT)} -> {DEST.relative_to(ROOT)}: "
        f"{manifest.num_episodes} episodes, "
        f"{manifest.num_frames} frames, {len(manifest.shards)} shard(s), {manifest.total_bytes / 1e3:.0f} kB "
        f"({result.overhead:+.1%} vs source) in {result.elapsed_s:.2f} s"
    )
    report = verify(str(DEST))
    print(f"verify: {report.episodes_checked} episodes, {'OK' if report.ok else report.problems}")
    print(json.dumps(inspect_dataset(str(DEST)), indent=2))
    if not report.ok:
        return 1
    stream(manifest.fps)
    return 0


def stream(fps: int) -> None:
    camera = "observation.images.front"
    dataset = ShardedLeRobotDataset(
        str(DEST),
        delta_timestamps={"action": [i / fps for i in range(16)], camera: [-1 / fps, 0.0]},
        episode_pool_size=4,
        seed=0,
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, num_workers=2)
    print(f"streaming {dataset.num_frames} frames of {dataset.num_episodes} episodes, batch 16, 2 workers:")
    seen = 0
    for number, batch in enumerate(loader):
        seen += len(batch["index"])
        if number < 3:
            shapes = {
                k: tuple(v.shape) for k, v in batch.items() if isinstance(v, torch.Tensor) and v.ndim > 1
            }
            episodes = sorted(set(batch["episode_index"].tolist()))
            pads = int(batch["action_is_pad"].sum())
            frames = batch["frame_index"][:6].tolist()
            print(f"  batch {number}: episodes {episodes}, frames {frames}..., action pads {pads}")
            if number == 0:
                print(f"  shapes: {shapes}")
                print(f"  task: {batch['task'][0]!r}")
    print(f"  ... {seen} samples in one epoch (dataset has {dataset.num_frames} frames)")


if __name__ == "__main__":
    sys.exit(main())
