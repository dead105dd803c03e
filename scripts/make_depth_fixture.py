"""Write tests/data/depth: a LeRobot v3 dataset with an RGB camera and depth maps (video and rows).

    /tmp/lerobot-venv/bin/python scripts/make_depth_fixture.py [--out tests/data/depth]

Run with the LeRobot 0.6.1 venv (``bash ../shared/tools/lerobot-venv/setup.sh /tmp/lerobot-venv``): the
dataset is written by LeRobot's own writer (``LeRobotDataset.create`` -> ``add_frame`` ->
``save_episode`` -> ``finalize``), the depth feature marked ``info.is_depth_map`` so that LeRobot
quantizes it (log, 12 bit) and encodes it losslessly as HEVC ``gray12le``; two depth image features
in the rows: uint16 millimetres (PNG ``I;16``) and float32 metres (``F``, converted to mm on read);
``golden.jsonl.gz`` records
what LeRobot's map-style ``LeRobotDataset[index]`` returns for every frame (depth dequantized to mm,
values in full), with windows over the depth key and the action. Values describe themselves: for
episode ``e``, frame ``f``: ``action = [e*1000+f, f]``; RGB pixel ``(y, x, c) = (37e + 11f + 3y + 5x +
50c) % 256``; depth pixel ``(y, x) = 400 + 50e + 7f + 3y + 2x`` millimetres (before quantization).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lerobot_fixture import main, write_golden

FPS = 10
HEIGHT, WIDTH = 24, 32
LENGTHS = [6, 9, 7]
RGB, DEPTH = "observation.images.rgb", "observation.images.depth"
# depth maps stored in the rows: uint16 millimetres (PNG, I;16) and float32 metres (TIFF, F)
DEPTH_MM, DEPTH_M = "observation.images.depth_png", "observation.images.depth_metres"
DEPTH_INFO = {"is_depth_map": True}  # LeRobot's marker: quantized to 12 bit, HEVC gray12le
DELTAS = {DEPTH: [-2 / FPS, 0.0], DEPTH_M: [-1 / FPS, 0.0], "action": [0.0, 1 / FPS]}


def rgb(episode: int, frame: int) -> np.ndarray:
    y, x, c = np.meshgrid(np.arange(HEIGHT), np.arange(WIDTH), np.arange(3), indexing="ij")
    return ((37 * episode + 11 * frame + 3 * y + 5 * x + 50 * c) % 256).astype(np.uint8)


def depth_mm(episode: int, frame: int) -> np.ndarray:
    y, x = np.meshgrid(np.arange(HEIGHT), np.arange(WIDTH), indexing="ij")
    return (400 + 50 * episode + 7 * frame + 3 * y + 2 * x).astype(np.uint16)[:, :, None]


def write(out: Path) -> None:
    import torchvision_shim  # noqa: F401  (the lerobot venv's CPU torchvision stand-in)
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    image = ["height", "width", "channels"]
    features = {
        RGB: {"dtype": "video", "shape": (HEIGHT, WIDTH, 3), "names": image},
        DEPTH: {"dtype": "video", "shape": (HEIGHT, WIDTH, 1), "names": image, "info": dict(DEPTH_INFO)},
        DEPTH_MM: {"dtype": "image", "shape": (HEIGHT, WIDTH, 1), "names": image, "info": dict(DEPTH_INFO)},
        DEPTH_M: {"dtype": "image", "shape": (HEIGHT, WIDTH, 1), "names": image, "info": dict(DEPTH_INFO)},
        "action": {"dtype": "float32", "shape": (2,), "names": None},
    }
    dataset = LeRobotDataset.create("local/depth", FPS, features, root=out, use_videos=True)
    for episode, length in enumerate(LENGTHS):
        for frame in range(length):
            action = np.array([episode * 1000 + frame, frame], dtype=np.float32)
            dataset.add_frame(
                {
                    RGB: rgb(episode, frame),
                    DEPTH: depth_mm(episode, frame),
                    DEPTH_MM: depth_mm(episode, frame),
                    DEPTH_M: depth_mm(episode, frame).astype(np.float32) / 1000,
                    "action": action,
                    "task": "look",
                }
            )
        dataset.save_episode()
    dataset.finalize()


def golden(out: Path) -> None:
    write_golden(out, FPS, DELTAS, hashed={RGB})  # RGB frames by sha256; depth in full


if __name__ == "__main__":
    main(__doc__, "depth", write, golden)
