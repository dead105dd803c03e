"""Image features stored in the rows (PNG in parquet, ``use_videos=False``): LeRobot's items, exactly.

``tests/data/images`` was written by LeRobot 0.6.1's LeRobotDataset writer (scripts/make_images_fixture.py);
values encode (episode, frame): state = action = [e*1000+f, f], pixel (y, x, c) = (37e+11f+3y+5x+50c) % 256.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import DATA, add_image_feature
from torch.utils.data import DataLoader

from lerobot_wds import ConvertConfig, ShardedLeRobotDataset, ShardFormatError, convert

KEY = "observation.image"


def pixels(episode: int, frame: int, height: int = 24, width: int = 32) -> np.ndarray:
    y, x, c = np.meshgrid(np.arange(height), np.arange(width), np.arange(3), indexing="ij")
    return ((37 * episode + 11 * frame + 3 * y + 5 * x + 50 * c) % 256).astype(np.uint8)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("images") / "images")
    convert(str(DATA / "images"), url, ConvertConfig())
    return url


def test_every_item_equals_lerobots(images: str) -> None:
    with gzip.open(DATA / "images/golden.jsonl.gz", "rt") as f:
        header, *lines = (json.loads(line) for line in f)
    dataset = ShardedLeRobotDataset(images, delta_timestamps=header["delta_timestamps"])
    assert len(lines) == header["num_frames"] == dataset.num_frames
    for line in lines:
        ours = dataset.item_at(line["index"])
        assert set(ours) == set(line["item"])
        for key, want in line["item"].items():
            got = ours[key]
            if isinstance(want, str):
                assert got == want
                continue
            assert (list(got.shape), str(got.dtype)) == (want["shape"], f"torch.{want['dtype']}"), key
            if "sha256" in want:
                assert hashlib.sha256(got.contiguous().numpy()).hexdigest() == want["sha256"], key
            else:
                assert got.flatten().tolist() == want["values"], key


@pytest.mark.parametrize("num_workers", [0, 2])
def test_epoch_of_uint8_images_shows_every_pixel(images: str, num_workers: int) -> None:
    dataset = ShardedLeRobotDataset(images, return_uint8=True, seed=2, batch_size=5)
    seen = 0
    for batch in DataLoader(dataset, batch_size=None, num_workers=num_workers):
        assert batch[KEY].dtype == torch.uint8
        for row in range(len(batch["index"])):
            episode, frame = int(batch["episode_index"][row]), int(batch["frame_index"][row])
            expected = torch.from_numpy(pixels(episode, frame).transpose(2, 0, 1).copy())
            assert torch.equal(batch[KEY][row], expected)
            assert batch["action"][row].tolist() == [episode * 1000 + frame, frame]
        seen += len(batch["index"])
    assert seen == dataset.num_frames


def test_image_transforms_apply_to_stored_images(images: str) -> None:
    plain = ShardedLeRobotDataset(images).item_at(5)[KEY]
    flipped = ShardedLeRobotDataset(images, image_transforms=lambda f: f.flip(-1)).item_at(5)[KEY]
    assert torch.equal(flipped, plain.flip(-1))


def test_unreadable_image_bytes_give_one_clear_error(fixture_copy: Any, tmp_path: Path) -> None:
    source = fixture_copy("tiny")
    add_image_feature(source)  # 8 bytes that are no image
    convert(str(source), str(tmp_path / "d"), ConvertConfig())
    where = r"episode 1, frame 6, observation\.images\.static"  # LeRobot's index 60 in tiny
    with pytest.raises(ShardFormatError, match=where + ": image bytes PIL cannot read"):
        ShardedLeRobotDataset(str(tmp_path / "d")).item_at(60)
