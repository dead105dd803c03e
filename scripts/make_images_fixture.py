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

from pathlib import Path
from typing import Any

import numpy as np
from lerobot_fixture import main, write_golden

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


def golden(out: Path) -> None:
    def float_image(_: str, value: Any) -> bool:  # by the sha256 of its bytes; other tensors in full
        return str(value.dtype) == "torch.float32" and value.ndim >= 3

    write_golden(out, FPS, DELTAS, hashed=float_image)


if __name__ == "__main__":
    main(__doc__, "images", write, golden)
