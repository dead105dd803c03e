"""``ShardedLeRobotDataset.meta`` against LeRobot's ``LeRobotDatasetMetadata`` of the same fixture.

``meta_golden.json`` was written by ``scripts/make_meta_golden.py`` with LeRobot 0.6.1: policies take
``ds_meta=dataset.meta`` and normalise with ``meta.stats``, so both must read exactly as LeRobot's.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from helpers import DATA

from lerobot_wds import ShardedLeRobotDataset


def assert_arrays_equal(ours: Any, expected: Any, where: str) -> None:
    if "values" in expected and "dtype" in expected:
        assert isinstance(ours, np.ndarray), f"{where}: got {type(ours).__name__}, expected an ndarray"
        assert (list(ours.shape), str(ours.dtype)) == (expected["shape"], expected["dtype"]), where
        assert ours.tolist() == expected["values"], where
        return
    assert sorted(ours) == sorted(expected), f"{where}: keys"
    for key in expected:
        assert_arrays_equal(ours[key], expected[key], f"{where}/{key}")


@pytest.mark.parametrize("name", ["tiny", "multi", "h264", "images", "depth", "dtypes"])
def test_meta_reads_as_lerobots(converted: dict[str, str], tmp_path: Any, name: str) -> None:
    expected = json.loads((DATA / name / "meta_golden.json").read_text())
    url = converted[name] if name in converted else _convert(name, tmp_path)
    meta = ShardedLeRobotDataset(url).meta
    for attribute, value in expected.items():
        if attribute == "stats":
            assert_arrays_equal(meta.stats, value, "stats")
        else:
            ours = getattr(meta, attribute)
            assert json.loads(json.dumps(ours)) == value, attribute


def _convert(name: str, tmp_path: Any) -> str:
    from lerobot_wds import ConvertConfig, convert

    convert(str(DATA / name), str(tmp_path / name), ConvertConfig())
    return str(tmp_path / name)
