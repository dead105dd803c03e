"""Depth maps (LeRobot 0.6.1 ``is_depth_map``): stored as video (12-bit HEVC gray12le, dequantized to
millimetres) or in the rows (16-bit PNG in mm, float TIFF in metres, converted to mm): LeRobot's items,
exactly.

``tests/data/depth`` was written by LeRobot 0.6.1's LeRobotDataset writer (scripts/make_depth_fixture.py),
with ``golden.jsonl.gz`` from its map-style dataset; values describe themselves: depth (y, x) =
400 + 50e + 7f + 3y + 2x mm before quantization, RGB (y, x, c) = (37e + 11f + 3y + 5x + 50c) % 256.
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import DATA, item_problems, run_lerobot
from torch.utils.data import DataLoader

from lerobot_wds import ConvertConfig, ShardedLeRobotDataset, convert

RGB, DEPTH = "observation.images.rgb", "observation.images.depth"
DEPTH_MM, DEPTH_M = "observation.images.depth_png", "observation.images.depth_metres"  # in the rows


@pytest.fixture(scope="module")
def depth(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("depth") / "depth")
    convert(str(DATA / "depth"), url, ConvertConfig())
    return url


def golden() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with gzip.open(DATA / "depth/golden.jsonl.gz", "rt") as f:
        header, *lines = (json.loads(line) for line in f)
    return header, lines


def assert_equal_to_golden(ours: dict[str, Any], want_item: dict[str, Any], where: str) -> None:
    assert set(ours) == set(want_item), where
    for key, want in want_item.items():
        got = ours[key]
        if isinstance(want, str):
            assert got == want, f"{where} {key}"
            continue
        got_type = (list(got.shape), str(got.dtype))
        assert got_type == (want["shape"], f"torch.{want['dtype']}"), f"{where} {key}"
        if "sha256" in want:
            assert hashlib.sha256(got.contiguous().numpy()).hexdigest() == want["sha256"], f"{where} {key}"
        else:
            assert got.flatten().tolist() == want["values"], f"{where} {key}"


def test_every_item_equals_lerobots(depth: str) -> None:
    header, lines = golden()
    dataset = ShardedLeRobotDataset(depth, delta_timestamps=header["delta_timestamps"])
    assert len(lines) == header["num_frames"] == dataset.num_frames
    for line in lines:
        assert_equal_to_golden(dataset.item_at(line["index"]), line["item"], f"index {line['index']}")


@pytest.mark.parametrize(("num_workers", "batch_size"), [(0, None), (2, 4)])
def test_a_shuffled_epoch_streams_lerobots_items(
    depth: str, num_workers: int, batch_size: int | None
) -> None:
    """Streamed (random frame order within episodes, so windows seek back and forth), batched by the
    dataset or collated by the DataLoader: every item as LeRobot's, depth untouched by uint8 and
    image_transforms (LeRobot applies neither to depth), RGB transformed."""
    header, lines = golden()
    by_index = {line["index"]: line["item"] for line in lines}
    dataset = ShardedLeRobotDataset(
        depth,
        delta_timestamps=header["delta_timestamps"],
        seed=3,
        batch_size=batch_size,
        image_transforms=lambda frames: frames.flip(-1),
    )
    loader = DataLoader(dataset, batch_size=None if batch_size else 3, num_workers=num_workers)
    seen = []
    for batch in loader:
        for row, index in enumerate(batch["index"].tolist()):
            want = by_index[index]
            for key in (DEPTH, DEPTH_MM, DEPTH_M):  # float32 mm, not flipped
                assert batch[key].dtype == torch.float32
                assert batch[key][row].flatten().tolist() == want[key]["values"], f"index {index} {key}"
            for key in (DEPTH, DEPTH_M):
                assert batch[f"{key}_is_pad"][row].tolist() == want[f"{key}_is_pad"]["values"]
            unflipped = batch[RGB][row].flip(-1).contiguous().numpy()
            assert hashlib.sha256(unflipped).hexdigest() == want[RGB]["sha256"], f"index {index}"
            seen.append(index)
    assert sorted(seen) == sorted(by_index)


def test_depth_is_millimetres_near_what_was_recorded(depth: str) -> None:
    """The fixture's own values, through LeRobot's 12-bit log quantization: within its step here."""
    dataset = ShardedLeRobotDataset(depth, return_uint8=True)
    item = dataset.item_at(10)  # episode 1, frame 4
    y, x = np.meshgrid(np.arange(24), np.arange(32), indexing="ij")
    recorded = 400 + 50 * 1 + 7 * 4 + 3 * y + 2 * x
    assert item[DEPTH].shape == (1, 24, 32)
    assert item[DEPTH].dtype == torch.float32
    assert np.abs(item[DEPTH][0].numpy() - recorded).max() <= 2
    assert item[RGB].dtype == torch.uint8


def test_stats_recorded_in_metres_are_given_in_millimetres(depth: str) -> None:
    """Depth comes in millimetres, so do the stats policies normalise with (as LeRobotDataset's meta):
    the fixture's float depth images were recorded in metres."""
    recorded = json.loads((DATA / "depth/meta/stats.json").read_text())
    stats = ShardedLeRobotDataset(depth).meta.stats
    for stat, value in recorded[DEPTH_M].items():
        factor = 1 if stat == "count" else 1000
        np.testing.assert_array_equal(stats[DEPTH_M][stat], np.asarray(value) * factor, err_msg=stat)
    for key in (DEPTH, DEPTH_MM, RGB):  # recorded in mm (or no unit): as recorded
        np.testing.assert_array_equal(stats[key]["mean"], np.asarray(recorded[key]["mean"]), err_msg=key)


def _collect(_worker_id: int) -> None:
    gc.collect()  # frees, in the worker, the garbage it inherited from the training process


def test_a_forked_worker_can_free_its_parents_depth_decoders(depth: str) -> None:
    """A DataLoader forks its workers while the training process may still hold depth decoders (here:
    garbage of an epoch read at num_workers=0); a worker freeing them must not wait on FFmpeg threads
    that were not forked (it hung in pthread_cond_destroy with FFmpeg's default threads)."""
    gc.collect()
    gc.disable()  # keep the first epoch's decoders as garbage until the workers are forked
    try:
        first = ShardedLeRobotDataset(depth, delta_timestamps={DEPTH: [-0.2, 0.0]})
        assert len(list(first)) == first.num_frames
        del first
        second = ShardedLeRobotDataset(depth, batch_size=4)
        loader = DataLoader(second, batch_size=None, num_workers=2, worker_init_fn=_collect, timeout=60)
        assert sum(len(batch["index"]) for batch in loader) == second.num_frames
    finally:
        gc.enable()


def test_metres_when_asked_items_and_stats(depth: str) -> None:
    """``depth_output_unit="m"``: video depth dequantized to metres (LeRobot's metre path: no rounding to
    whole millimetres), depth images in mm divided by 1000, images in metres as recorded; stats match."""
    metres = ShardedLeRobotDataset(depth, depth_output_unit="m")
    millimetres = ShardedLeRobotDataset(depth)
    ours, theirs = metres.item_at(10), millimetres.item_at(10)
    assert ours[DEPTH].dtype == torch.float32
    np.testing.assert_allclose(ours[DEPTH].numpy() * 1000, theirs[DEPTH].numpy(), atol=0.5)  # mm round
    assert torch.equal(ours[DEPTH_MM], theirs[DEPTH_MM] / 1000)
    assert torch.equal(ours[DEPTH_M] * 1000, theirs[DEPTH_M])
    assert torch.equal(ours[RGB], theirs[RGB])
    recorded = json.loads((DATA / "depth/meta/stats.json").read_text())
    for stat, value in recorded[DEPTH_M].items():  # recorded in metres: as recorded
        np.testing.assert_array_equal(metres.meta.stats[DEPTH_M][stat], np.asarray(value), err_msg=stat)
    for stat, value in recorded[DEPTH_MM].items():  # recorded in mm: LeRobot's value * (1 / 1000)
        factor = 1 if stat == "count" else 1.0 / 1000.0
        np.testing.assert_array_equal(metres.meta.stats[DEPTH_MM][stat], np.asarray(value) * factor)


def test_an_unknown_depth_unit_is_refused() -> None:
    with pytest.raises(ValueError, match=r"depth_output_unit"):
        ShardedLeRobotDataset(str(DATA / "depth"), depth_output_unit="cm")  # type: ignore[arg-type]


@pytest.mark.lerobot
@pytest.mark.skipif(not os.environ.get("LEROBOT_VENV"), reason="LEROBOT_VENV (a LeRobot venv) not given")
@pytest.mark.parametrize("unit", ["m", "mm"])
def test_every_item_and_stat_equals_lerobots_in_the_unit_asked(depth: str, tmp_path: Path, unit: str) -> None:
    """LeRobot 0.6.1's ``LeRobotDataset(depth_output_unit=unit)`` run now on the fixture: every item (video
    depth, depth images in mm and in metres, RGB) and the depth stats equal ours, bit for bit."""
    source = tmp_path / "depth"
    shutil.copytree(DATA / "depth", source)
    header, _ = golden()
    run_lerobot("record", source, json.dumps(header["delta_timestamps"]), unit)
    items = json.loads((source / "items.json").read_text())
    dataset = ShardedLeRobotDataset(
        depth, delta_timestamps=header["delta_timestamps"], depth_output_unit=unit
    )
    assert len(items) == dataset.num_frames
    assert [
        p for i, want in enumerate(items) for p in item_problems(dataset.item_at(i), want, f"{i}: ")
    ] == []
    stats = json.loads((source / "meta_record.json").read_text())["stats"]
    for key in (DEPTH, DEPTH_MM, DEPTH_M):
        for stat, want in stats[key].items():
            got = np.asarray(dataset.meta.stats[key][stat])
            assert got.tolist() == want["values"], f"{key} {stat}"
