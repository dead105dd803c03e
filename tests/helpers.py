"""Helpers shared by the tests: fixture locations, frame-code reading, sample reading.

Fixture provenance: written by LeRobot 0.6.1's LeRobotDataset writer; values encode (episode, frame, camera).
tests/data/images and tests/data/depth: written the same way by scripts/make_images_fixture.py and
scripts/make_depth_fixture.py (self-describing values, golden items from LeRobot's map-style dataset).
Each fixture's ``meta_golden.json``: LeRobot 0.6.1's ``LeRobotDatasetMetadata`` of it, recorded by
``scripts/make_meta_golden.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import webdataset as wds
from itemdiff import item_problems  # noqa: F401  (re-exported for the tests)

from lerobot_wds import format as fmt
from lerobot_wds import read_manifest

DATA = Path(__file__).parent / "data"
FIXTURES = ("tiny", "multi", "h264")
# A real robot's recording (480x640 AV1, float32 list<float> columns as LeRobot's v2.1->v3.0 converter
# writes them), read from ../shared beside the repository (CI has it there): 10 episodes of the public
# LeRobot dataset YifanTian07/G1-policy-train, ported to v3.0 by LeRobot 0.6.1. 35 MB: not copied.
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "g1"


def fixture_dir(name: str) -> Path:
    """A fixture's LeRobot v3 folder (with its golden.jsonl.gz): tests/data/NAME, or the real g1."""
    return REAL if name == "g1" else DATA / name


def read_frame_code(frame_hwc_or_chw: np.ndarray) -> tuple[int, int, int]:
    """(frame, episode, camera) from the code grid in a fixture frame's top-left corner (fixtures README)."""
    frame = frame_hwc_or_chw
    if frame.shape[0] in (1, 3) and frame.shape[-1] not in (1, 3):
        frame = frame.transpose(1, 2, 0)
    height, width = frame.shape[:2]
    cell_w = width // 12
    cell_h = max(6, min(cell_w, height // 8))
    values = []
    for row in range(3):
        value = 0
        for bit in range(12):
            y0, x0 = row * cell_h, bit * cell_w
            inner = frame[
                y0 + cell_h // 4 : y0 + cell_h - cell_h // 4, x0 + cell_w // 4 : x0 + cell_w - cell_w // 4
            ]
            if inner.astype(np.float64).mean() > 127.5:
                value |= 1 << bit
        values.append(value)
    return values[0], values[1], values[2]


def read_samples(root: Path) -> dict[int, dict[str, bytes]]:
    """Every sample of a converted dataset, through webdataset's own tar reader (no decoders)."""
    manifest = read_manifest(str(root))
    urls = [str(root / s.path) for s in manifest.shards]
    samples = {}
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        key = sample.pop("__key__")
        sample.pop("__url__")
        samples[fmt.parse_episode_key(key)] = sample
    return samples


def add_image_feature(source: Path) -> None:
    """Give a fixture copy an ``image`` feature stored in parquet (row ``i``: ``bytes([i % 256]) * 8``)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    info = json.loads((source / "meta/info.json").read_text())
    info["features"]["observation.images.static"] = {"dtype": "image", "shape": [4, 4, 3], "names": None}
    (source / "meta/info.json").write_text(json.dumps(info))
    for data in sorted(source.glob("data/*/*.parquet")):
        table = pq.read_table(data)
        images = pa.array(
            [{"bytes": bytes([i % 256]) * 8, "path": None} for i in table["index"].to_pylist()],
            pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
        )
        pq.write_table(table.append_column("observation.images.static", images), data)


def run_lerobot(*args: object) -> str:
    """``tests/lerobot_dtypes.py ARGS`` with the LeRobot venv's python (``LEROBOT_VENV``); its last line."""
    import os
    import subprocess

    python = Path(os.environ["LEROBOT_VENV"]) / "bin/python"
    command = [python, Path(__file__).parent / "lerobot_dtypes.py", *args]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout.splitlines()[-1]


def batch_rows(batch: dict[str, object]) -> list[dict[str, object]]:
    """A collated batch back into its items (tensors split on the first axis, lists by position)."""
    import torch

    size = len(next(v for v in batch.values() if isinstance(v, torch.Tensor)))
    return [{k: v[row] for k, v in batch.items()} for row in range(size)]  # type: ignore[index]
