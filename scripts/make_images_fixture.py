"""Write tests/data/images: a LeRobot v3 dataset whose camera is an ``image`` feature (PNG in parquet).

    /tmp/lerobot-venv/bin/python scripts/make_images_fixture.py [--out tests/data/images]

Run with the LeRobot 0.6.1 venv (``bash ../shared/tools/lerobot-venv/setup.sh /tmp/lerobot-venv``): the
dataset is written by LeRobot's own writer (``LeRobotDataset.create(use_videos=False)`` -> ``add_frame``
-> ``save_episode`` -> ``finalize``) and ``golden.jsonl.gz`` records what LeRobot's map-style
``LeRobotDataset[index]`` returns for every frame, with a window over the image key. Values describe
themselves: for episode ``e``, frame ``f``: ``observation.state = action = [e*1000+f, f]``, pixel
``(y, x, c) = (37e + 11f + 3y + 5x + 50c) % 256`` (PNG is lossless, so every pixel can be checked).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FPS = 10
HEIGHT, WIDTH = 24, 32
LENGTHS = [7, 12, 9]
KEY = "observation.image"
DELTAS = {KEY: [-2 / FPS, 0.0], "action": [0.0, 1 / FPS, 2 / FPS]}


def pixels(episode: int, frame: int) -> np.ndarray:
    y, x, c = np.meshgrid(np.arange(HEIGHT), np.arange(WIDTH), np.arange(3), indexing="ij")
    return ((37 * episode + 11 * frame + 3 * y + 5 * x + 50 * c) % 256).astype(np.uint8)


def write(out: Path) -> None:
    import torchvision_shim  # noqa: F401  (the lerobot venv's CPU torchvision stand-in)
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        KEY: {"dtype": "image", "shape": (HEIGHT, WIDTH, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (2,), "names": None},
        "action": {"dtype": "float32", "shape": (2,), "names": None},
    }
    dataset = LeRobotDataset.create("local/images", FPS, features, root=out, use_videos=False)
    for episode, length in enumerate(LENGTHS):
        for frame in range(length):
            values = np.array([episode * 1000 + frame, frame], dtype=np.float32)
            dataset.add_frame(
                {KEY: pixels(episode, frame), "observation.state": values, "action": values, "task": "stack"}
            )
        dataset.save_episode()
    dataset.finalize()


def tensor_json(value: object) -> object:
    import torch

    if isinstance(value, torch.Tensor):
        if value.dtype == torch.float32 and value.ndim >= 3:  # images: exact bytes by hash
            digest = hashlib.sha256(value.contiguous().numpy()).hexdigest()
            return {"shape": list(value.shape), "dtype": "float32", "sha256": digest}
        return {"shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch."),
                "values": value.flatten().tolist()}  # fmt: skip
    return value


def golden(out: Path) -> None:
    import torchvision_shim  # noqa: F401
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset("local/images", root=out, delta_timestamps=DELTAS)
    with gzip.open(out / "golden.jsonl.gz", "wt") as f:
        f.write(json.dumps({"fps": FPS, "delta_timestamps": DELTAS, "num_frames": len(dataset)}) + "\n")
        for index in range(len(dataset)):
            item = {k: tensor_json(v) for k, v in dataset[index].items()}
            f.write(json.dumps({"index": index, "item": item}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "tests/data/images")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    write(args.out)
    golden(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
