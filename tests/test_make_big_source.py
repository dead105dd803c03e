"""scripts/make_big_source.py (the benchmarks' large source): at 2x, g1's episodes repeated, laid out as
LeRobot's recorder would (several data and video files), converted, verified and read back equal to g1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import fixture_dir, read_samples
from torchcodec.decoders import VideoDecoder

from lerobot_wds import ConvertConfig, convert, read_manifest
from lerobot_wds import format as fmt
from lerobot_wds.converter.verify import verify

SCRIPT = Path(__file__).resolve().parents[1] / "scripts/make_big_source.py"


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("big") / "g1x2"
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    command = [sys.executable, str(SCRIPT), "--repeat", "2", "--dest", str(dest)]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=environment, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["episodes"] == 20
    return dest


def frames(segment: bytes, indices: list[int]) -> np.ndarray:
    return VideoDecoder(segment, seek_mode="exact").get_frames_at(indices).data.numpy()


def test_layout_is_the_recorders(big: Path) -> None:
    """Files rolled over at g1's own limits (1 MB data, 40 MB video): 2 of each at 2x; contiguous index."""
    info = json.loads((big / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"]) == (20, 2 * 3540)
    assert len(list(big.glob("data/*/*.parquet"))) == 2
    assert len(list(big.glob("videos/*/*/*.mp4"))) == 2
    table = pq.read_table(big / "meta/episodes/chunk-000/file-000.parquet")
    assert table["episode_index"].to_pylist() == list(range(20))
    to_index = table["dataset_to_index"].to_pylist()
    assert table["dataset_from_index"].to_pylist() == [0, *to_index[:-1]]
    assert sorted(set(table["videos/observation.images.cam_high/file_index"].to_pylist())) == [0, 1]
    rows = pa.concat_tables(pq.read_table(p) for p in sorted(big.glob("data/*/*.parquet")))
    assert rows["index"].to_pylist() == list(range(info["total_frames"]))


def test_converts_verifies_and_reads_back_g1(big: Path, tmp_path: Path) -> None:
    """Episode i of the copy == g1's episode i % 10: rows (but episode_index and index) and pixels."""
    ours, theirs = tmp_path / "big", tmp_path / "g1"
    convert(str(big), str(ours), ConvertConfig(shard_size_mb=30))
    convert(str(fixture_dir("g1")), str(theirs), ConvertConfig())
    report = verify(str(ours))
    assert report.ok, report.problems
    assert len(read_manifest(str(ours)).shards) > 1
    copy, original = read_samples(ours), read_samples(theirs)
    assert sorted(copy) == list(range(20))
    camera = f"{fmt.video_suffix('observation.images.cam_high')}"
    from_index = 0
    for episode_index in range(20):
        mine, g1 = copy[episode_index], original[episode_index % 10]
        rows = fmt.decode_rows(mine[fmt.ROWS_SUFFIX], "copy", max_rows=10**6, max_bytes=10**9)
        g1_rows = fmt.decode_rows(g1[fmt.ROWS_SUFFIX], "g1", max_rows=10**6, max_bytes=10**9)
        assert rows["episode_index"].to_pylist() == [episode_index] * rows.num_rows
        assert rows["index"].to_pylist() == list(range(from_index, from_index + rows.num_rows))
        others = [c for c in rows.column_names if c not in ("episode_index", "index")]
        assert rows.select(others).equals(g1_rows.select(others))
        n = rows.num_rows
        # every frame of the last episode (in the second video file), 3 frames of the others
        picked = list(range(n)) if episode_index == 19 else [0, n // 2, n - 1]
        np.testing.assert_array_equal(frames(mine[camera], picked), frames(g1[camera], picked))
        from_index += n


LEROBOT_CHECK = """
import sys, torch, torchvision_shim  # the lerobot venv's CPU torchvision stand-in
from lerobot.datasets.lerobot_dataset import LeRobotDataset
big, g1 = LeRobotDataset("local/big", root=sys.argv[1]), LeRobotDataset("local/g1", root=sys.argv[2])
assert (len(big), big.num_episodes) == (2 * len(g1), 20), (len(big), big.num_episodes)
for i in (0, 5, len(g1) - 1, len(g1), len(g1) + 17, 2 * len(g1) - 1):
    a, b = big[i], g1[i % len(g1)]
    assert set(a) == set(b), i
    for key, value in b.items():
        if key == "index":
            assert a[key].item() == i, (i, key)
        elif key == "episode_index":
            assert a[key].item() == value.item() + 10 * (i >= len(g1)), (i, key)
        elif isinstance(value, torch.Tensor):
            assert torch.equal(a[key], value), (i, key)
        else:
            assert a[key] == value, (i, key)
print("ok")
"""


@pytest.mark.lerobot
@pytest.mark.skipif(not os.environ.get("LEROBOT_VENV"), reason="LEROBOT_VENV (a LeRobot venv) not given")
def test_lerobot_loads_it_equal_to_g1(big: Path) -> None:
    """LeRobot 0.6.1's LeRobotDataset: item i of the copy == g1's item i % len(g1), but index and
    episode_index; every key, frames included."""
    python = Path(os.environ["LEROBOT_VENV"]) / "bin/python"
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    command = [str(python), "-c", LEROBOT_CHECK, str(big), str(fixture_dir("g1"))]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=environment, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().endswith("ok")
