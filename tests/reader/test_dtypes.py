"""LeRobot's value semantics for every dtype and shape its writer accepts (issue 29).

``tests/data/dtypes`` was written by LeRobot 0.6.1's own writer (``python tests/lerobot_dtypes.py matrix
tests/data`` in the LeRobot venv): float16/32/64, int8/16/32/64, uint8 and bool features as scalars,
vectors and 2-D arrays, a string feature, a video camera, a depth video and an image stored in the rows,
with windows over most of them. Its ``items.json`` is what LeRobot's ``LeRobotDataset[index]`` returned
for every index. The ``lerobot``-marked tests write it afresh with LeRobot and load our export with it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from helpers import DATA, batch_rows, item_problems, run_lerobot
from torch.utils.data import DataLoader

from lerobot_wds import ConvertConfig, ShardedLeRobotDataset, convert, export
from lerobot_wds.reader.items import item_dtype, lerobot_value

ROOT = Path(__file__).resolve().parents[2]
MATRIX = DATA / "dtypes"


def matrix_job() -> dict[str, Any]:
    info = json.loads((MATRIX / "meta/info.json").read_text())
    deltas = {  # as tests/lerobot_dtypes.py's MATRIX: the fixture's windows
        "f16": [0.0, 0.1], "f64": [-0.1, 0.0], "m64": [-0.1, 0.0, 0.1], "i32": [0.0, 0.1], "u8": [0.0, 0.2],
        "b1": [0.0, 0.1], "observation.images.cam": [-0.1, 0.0], "observation.images.depth": [0.0, 0.1],
        "observation.images.still": [-0.2, 0.0],
    }  # fmt: skip
    return {"features": info["features"], "delta_timestamps": deltas}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("dtypes") / "shards")
    convert(str(MATRIX), url, ConvertConfig())
    return url


def golden(root: Path = MATRIX) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((root / "items.json").read_text())
    return items


# ------------------------------------------------------------------ the mapping, without LeRobot


@pytest.mark.parametrize(
    "dtype", ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "bool"]
)
@pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
def test_values_are_torch_tensors_of_python_scalars_as_lerobot_builds_them(dtype: str, shape: tuple) -> None:
    """LeRobot's ``hf_transform_to_torch`` is ``torch.tensor(value.tolist())``: our value equals it in dtype
    and every bit (float64 rounded to the nearest float32, integers widened to int64)."""
    values = (np.arange(int(np.prod(shape))).reshape(shape) * 1.1 + 0.1).astype(np.float64)
    stored = values.astype(dtype) if dtype != "bool" else values.astype(np.int64) % 2 == 0
    theirs = torch.tensor(stored.tolist())
    ours = lerobot_value(stored)
    assert ours.dtype == theirs.dtype
    assert ours.shape == theirs.shape
    assert torch.equal(ours, theirs)
    assert np.dtype(item_dtype(stored.dtype)) == theirs.numpy().dtype


def test_float64_rounds_to_nearest_float32_unless_kept() -> None:
    stored = np.array([3.1, 1 / 3, 1e-40, 2.0**100])
    assert lerobot_value(stored).tolist() == torch.tensor(stored.tolist()).tolist()
    assert lerobot_value(stored).tolist() != stored.tolist()
    kept = lerobot_value(stored, keep_float64=True)
    assert kept.dtype == torch.float64
    assert kept.tolist() == stored.tolist()
    assert lerobot_value(stored.astype(np.float32), keep_float64=True).dtype == torch.float32


def test_strings_stay_strings_and_values_never_alias_the_episode() -> None:
    assert lerobot_value("pick the cube") == "pick the cube"
    column = np.zeros((4, 3), dtype=np.float32)
    lerobot_value(column[1]).add_(1)  # a caller normalising in place does not touch the episode's rows
    assert not column.any()


def test_uint64_past_int64_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match=r"counter: uint64 value 18446744073709551615 is past int64's range"):
        lerobot_value(np.array([2**64 - 1], dtype=np.uint64), key="counter")
    assert lerobot_value(np.array([7], dtype=np.uint64)).dtype == torch.int64


def test_a_window_over_a_string_feature_is_refused_clearly(matrix: str) -> None:
    with pytest.raises(ValueError, match=r"delta_timestamps: keys \['s'\] are string features"):
        ShardedLeRobotDataset(matrix, delta_timestamps={"s": [0.0, 0.1]})


# ----------------------------------------------------------- items equal LeRobot's, every dtype


def test_every_item_equals_lerobots(matrix: str) -> None:
    dataset = ShardedLeRobotDataset(matrix, delta_timestamps=matrix_job()["delta_timestamps"])
    items = golden()
    assert len(items) == dataset.num_frames
    problems = [p for i, want in enumerate(items) for p in item_problems(dataset.item_at(i), want, f"{i}: ")]
    assert problems == []


@pytest.mark.parametrize("preset", ["lerobot", "fast"])
@pytest.mark.parametrize("num_workers", [0, 2])
def test_streamed_items_equal_lerobots(matrix: str, preset: str, num_workers: int) -> None:
    dataset = ShardedLeRobotDataset(matrix, delta_timestamps=matrix_job()["delta_timestamps"], preset=preset)
    items = golden()
    seen = list(DataLoader(dataset, batch_size=None, num_workers=num_workers))
    assert sorted(int(item["index"]) for item in seen) == list(range(len(items)))
    assert [
        p for item in seen for p in item_problems(item, items[int(item["index"])], f"{item['index']}:")
    ] == []


@pytest.mark.parametrize(("preset", "num_workers"), [("lerobot", 0), ("fast", 2)])
def test_batches_equal_lerobots_items_collated(matrix: str, preset: str, num_workers: int) -> None:
    """Batches built by the dataset (``build_batch``) and by a DataLoader over items (``arena.collate``)."""
    deltas = matrix_job()["delta_timestamps"]
    items = golden()
    built = ShardedLeRobotDataset(matrix, delta_timestamps=deltas, preset=preset, batch_size=4)
    plain = ShardedLeRobotDataset(matrix, delta_timestamps=deltas, preset=preset)
    for loader in (
        DataLoader(built, batch_size=None, num_workers=num_workers),
        DataLoader(plain, batch_size=4, num_workers=num_workers),
    ):
        rows = [row for batch in loader for row in batch_rows(batch)]
        assert sorted(int(row["index"]) for row in rows) == list(range(len(items)))
        assert [
            p for row in rows for p in item_problems(row, items[int(row["index"])], f"{row['index']}:")
        ] == []


def test_keep_float64_returns_the_stored_float64_values(matrix: str) -> None:
    table = pq.read_table(MATRIX / "data/chunk-000/file-000.parquet")
    dataset = ShardedLeRobotDataset(matrix, keep_float64=True, delta_timestamps={"f64": [-0.1, 0.0]})
    for index in (0, 3, 9):
        item = dataset.item_at(index)
        assert item["v64"].dtype == item["m64"].dtype == item["f64"].dtype == torch.float64
        assert item["v64"].tolist() == table["v64"][index].as_py()
        assert item["m64"].tolist() == table["m64"][index].as_py()
        assert item["f64"][-1].item() == table["f64"][index].as_py()
        assert item["f32"].dtype == torch.float32
        assert item["i32"].dtype == torch.int64


# --------------------------------------------------------------------------- LeRobot itself


@pytest.mark.lerobot
@pytest.mark.skipif(not os.environ.get("LEROBOT_VENV"), reason="LEROBOT_VENV (a LeRobot venv) not given")
def test_lerobot_writes_the_matrix_afresh_and_loads_our_export_equal(tmp_path: Path) -> None:
    """LeRobot 0.6.1 writes the matrix now (not the committed copy), we convert it and match every item;
    then LeRobot loads our export of the shards and returns the same items again."""
    assert json.loads(run_lerobot("matrix", tmp_path)) == ["dtypes"]
    fresh = tmp_path / "dtypes"
    shards, exported = tmp_path / "shards", tmp_path / "exported"
    convert(str(fresh), str(shards))
    job = matrix_job()
    dataset = ShardedLeRobotDataset(str(shards), delta_timestamps=job["delta_timestamps"])
    items = golden(fresh)
    assert [p for i, w in enumerate(items) for p in item_problems(dataset.item_at(i), w, f"{i}: ")] == []
    export(str(shards), str(exported))
    run_lerobot("record", exported, json.dumps(job["delta_timestamps"]))
    assert golden(exported) == items
    original, again = (json.loads((root / "meta_record.json").read_text()) for root in (fresh, exported))
    assert again == original  # stats.json and the per-episode stats/* columns: types and values
    assert original["episode_stats"]["stats/f64/mean"]["type"] == "list<element: double>"
