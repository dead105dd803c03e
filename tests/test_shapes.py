"""Cameras declared channel-first without ``video.*`` info (datasets ported by other tools, e.g. a
``[3, 224, 224]`` camera) and sources whose stored dtypes differ for one key (issue 29, parts 3 and 4).

The channel-first dataset is ``tests/data/tiny`` with its camera's declaration rewritten that way: its
frames are the same, so every reader result must be too, and LeRobot (which reads the declaration by
its names) loads our export of it with tiny's golden items.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers import DATA
from PIL import Image

from lerobot_wds import ConvertConfig, MixedDataset, ShardedLeRobotDataset, convert, export, inspect_dataset
from lerobot_wds import format as fmt
from lerobot_wds.cli import main
from lerobot_wds.preview import preview_episode

ROOT = Path(__file__).resolve().parents[1]
CAMERA = "observation.images.front"


def channel_first_copy(target: Path) -> Path:
    """tiny with its camera declared ``[3, 64, 96]`` (channels, height, width) and no ``video.*`` info."""
    import shutil

    shutil.copytree(DATA / "tiny", target)
    info = json.loads((target / "meta/info.json").read_text())
    feature = info["features"][CAMERA]
    feature["shape"] = [3, 64, 96]
    feature["names"] = ["channels", "height", "width"]
    feature["info"] = {k: v for k, v in feature["info"].items() if not k.startswith("video.")}
    (target / "meta/info.json").write_text(json.dumps(info, indent=4))
    return target


def float64_action_copy(target: Path) -> Path:
    """tiny with ``action`` stored as float64 (the same values, widened)."""
    import shutil

    shutil.copytree(DATA / "tiny", target)
    info = json.loads((target / "meta/info.json").read_text())
    info["features"]["action"]["dtype"] = "float64"
    (target / "meta/info.json").write_text(json.dumps(info, indent=4))
    for path in sorted((target / "data").glob("*/*.parquet")):
        table = pq.read_table(path)
        position = table.column_names.index("action")
        kind = pa.list_(pa.float64(), 6)
        table = table.set_column(position, pa.field("action", kind), table["action"].cast(kind))
        pq.write_table(table, path)
    return target


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("shapes")
    sources = {
        "tiny": DATA / "tiny",
        "channel_first": channel_first_copy(out / "src-channel-first"),
        "float64": float64_action_copy(out / "src-float64"),
    }
    urls = {}
    for name, source in sources.items():
        convert(str(source), str(out / name), ConvertConfig())
        urls[name] = str(out / name)
    return urls


def test_camera_chw_reads_declarations_as_lerobot() -> None:
    hwc = {"shape": [224, 224, 3], "names": ["height", "width", "channels"]}
    chw = {"shape": [3, 224, 224], "names": ["channels", "height", "width"]}
    assert fmt.camera_chw(hwc) == fmt.camera_chw(chw) == (3, 224, 224)
    assert fmt.camera_chw({"shape": [3, 64, 96], "names": None}) == (3, 64, 96)
    assert fmt.camera_chw({"shape": [64, 96, 1], "names": None}) == (1, 64, 96)
    stale = {"shape": [3, 224, 224], "names": None, "info": {"video.height": 480, "video.width": 640}}
    assert fmt.camera_chw(stale) == (3, 480, 640)  # the writer's stream facts win
    assert fmt.camera_chw({"shape": [6], "names": None}) is None


def test_inspect_takes_the_size_from_the_stream(
    shards: dict[str, str], capsys: pytest.CaptureFixture
) -> None:
    camera = inspect_dataset(shards["channel_first"])["cameras"][CAMERA]
    assert camera == {"codec": "av1", "pix_fmt": "yuv420p", "height": 64, "width": 96, "depth": False}
    assert inspect_dataset(shards["tiny"])["cameras"][CAMERA] == camera
    assert main(["inspect", shards["channel_first"]]) == 0
    assert "96x64" in capsys.readouterr().out


def test_preview_shows_the_frames_at_their_size(shards: dict[str, str]) -> None:
    pytest.importorskip("matplotlib")
    previews = [preview_episode(shards[name], 1, num_frames=3) for name in ("channel_first", "tiny")]
    assert {(t.width, t.height) for t in previews[0].tiles} == {(96, 64)}
    assert previews[0].tiles == previews[1].tiles
    first, second = (np.asarray(Image.open(io.BytesIO(p.png)).convert("RGB")) for p in previews)
    for t in previews[0].tiles:  # the same frames drawn at the same places
        np.testing.assert_array_equal(
            first[t.top : t.top + t.height, t.left : t.left + t.width],
            second[t.top : t.top + t.height, t.left : t.left + t.width],
        )


def test_items_and_meta_are_lerobots(shards: dict[str, str]) -> None:
    deltas = {CAMERA: [-1 / 30, 0.0], "action": [0.0, 1 / 30]}
    ours = ShardedLeRobotDataset(shards["channel_first"], delta_timestamps=deltas)
    theirs = ShardedLeRobotDataset(shards["tiny"], delta_timestamps=deltas)
    for index in (0, 7, 60):
        a, b = ours.item_at(index), theirs.item_at(index)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)
    assert ours.meta.shapes[CAMERA] == (3, 64, 96)  # the declaration, as LeRobot's meta.shapes


def test_a_mixture_reads_both_declarations_as_one_shape(shards: dict[str, str]) -> None:
    sources = [ShardedLeRobotDataset(shards[name]) for name in ("tiny", "channel_first")]
    mixture = MixedDataset(sources, weights=[1, 1], samples_per_epoch=8)
    assert len(list(mixture)) == 8


def test_a_mixture_of_float64_and_float32_stored_action_follows_lerobot(shards: dict[str, str]) -> None:
    """LeRobot's items are float32 for both, so they mix and their stats aggregate (MultiLeRobotDataset);
    keeping float64 in one source makes the items differ: one clear error."""
    tiny, wide = ShardedLeRobotDataset(shards["tiny"]), ShardedLeRobotDataset(shards["float64"])
    mixture = MixedDataset([tiny, wide], weights=[1, 1], samples_per_epoch=16)
    items = list(mixture)
    assert {item["action"].dtype for item in items} == {torch.float32}
    assert {int(item["dataset_index"]) for item in items} == {0, 1}
    np.testing.assert_array_equal(mixture.meta.stats["action"]["mean"], tiny.meta.stats["action"]["mean"])
    kept = ShardedLeRobotDataset(shards["float64"], keep_float64=True)
    assert kept.item_at(3)["action"].dtype == torch.float64
    with pytest.raises(ValueError, match=r"disagree on 'action': shape \(6,\) dtype float32 in 'tiny', "):
        MixedDataset([tiny, kept], weights=[1, 1])


def test_export_writes_back_the_declaration(shards: dict[str, str], tmp_path: Path) -> None:
    export(shards["channel_first"], str(tmp_path / "exported"))
    exported = json.loads((tmp_path / "exported/meta/info.json").read_text())["features"]
    source = json.loads((Path(shards["channel_first"]) / "meta/info.json").read_text())["features"]
    assert exported == source
    export(shards["float64"], str(tmp_path / "wide"))
    table = pq.read_table(tmp_path / "wide/data/chunk-000/file-000.parquet")
    assert table.schema.field("action").type == pa.list_(pa.float64(), 6)


@pytest.mark.lerobot
@pytest.mark.skipif(not os.environ.get("LEROBOT_VENV"), reason="LEROBOT_VENV (a LeRobot venv) not given")
@pytest.mark.parametrize("name", ["channel_first", "float64"])
def test_lerobot_loads_the_export_with_tinys_golden_items(
    name: str, shards: dict[str, str], tmp_path: Path
) -> None:
    """LeRobot 0.6.1 over our export returns tiny's golden items: the camera declared channel-first
    decodes the same frames; float64 actions come back as LeRobot's float32 of the same values."""
    export(shards[name], str(tmp_path / name))
    python = Path(os.environ["LEROBOT_VENV"]) / "bin/python"
    command = [python, ROOT / "tests/lerobot_check.py", tmp_path / name, DATA / "tiny/golden.jsonl.gz"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.splitlines()[-1])
    assert report["failures"] == []
    assert report["checked"] > 20
