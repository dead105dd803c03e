"""Run with a LeRobot venv's python: write datasets of any feature schema with LeRobot's own writer, and
record what LeRobot's map-style ``LeRobotDataset[index]`` returns for every index.

    python tests/lerobot_dtypes.py JOBS_JSON OUT_DIR
    python tests/lerobot_dtypes.py matrix tests/data   # the committed fixture tests/data/dtypes
    python tests/lerobot_dtypes.py record ROOT DELTA_TIMESTAMPS_JSON [mm|m]   # ROOT/items.json of any
                                                                              # dataset (depth_output_unit)

``JOBS_JSON`` is a list of datasets: ``{"name", "fps", "lengths", "features", "delta_timestamps"}`` where
``features`` is LeRobot's feature dict (shapes as lists; camera shapes ``(H, W, C)``). Each dataset is
written to ``OUT_DIR/<name>`` (``LeRobotDataset.create`` -> ``add_frame`` -> ``save_episode`` ->
``finalize``), and ``OUT_DIR/<name>/items.json`` holds LeRobot's item for every index: tensors as
``{"dtype", "shape", "values"}`` (exact: float32 values survive JSON as doubles) or, for cameras (frames
and depth maps), ``{"dtype", "shape", "sha256"}`` of their bytes; ``meta_record.json`` what its metadata
says (:func:`meta_record`). Prints one JSON line: the names written.

Values describe themselves and exercise each dtype's range: see :func:`value`. Both sides share only the
written dataset and ``items.json``, so the reader under test never sees how values were made.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

# Large and signed values per integer dtype: int32 near its maximum, uint8 above 127, int8 negative.
_INT_OFFSETS = {
    "int8": -128,
    "int16": -30000,
    "int32": 2**31 - 100_000,
    "int64": 2**40,
    "uint8": 100,
    "uint16": 60000,
    "uint32": 2**32 - 100_000,
}
_INT_SPANS = {"int8": 256, "int16": 60000, "int32": 99_000, "int64": 2**20, "uint8": 156, "uint16": 5000}


_IMAGE = ["height", "width", "channels"]
FPS = 10
# Every dtype and shape LeRobot 0.6.1's writer accepts, windows over most of them (a window of strings
# makes LeRobot's torch.stack raise, so ``s`` has none), a video camera, a depth video and a stored image.
MATRIX: dict[str, Any] = {
    "name": "dtypes",
    "fps": FPS,
    "lengths": [5, 7, 4],
    "features": {
        "f16": {"dtype": "float16", "shape": [2], "names": None},
        "f32": {"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]},
        "f64": {"dtype": "float64", "shape": [1], "names": None},
        "v64": {"dtype": "float64", "shape": [3], "names": None},
        "m64": {"dtype": "float64", "shape": [2, 3], "names": None},
        "i8": {"dtype": "int8", "shape": [2], "names": None},
        "i16": {"dtype": "int16", "shape": [1], "names": None},
        "i32": {"dtype": "int32", "shape": [2], "names": None},
        "mi32": {"dtype": "int32", "shape": [2, 2], "names": None},
        "i64": {"dtype": "int64", "shape": [1], "names": None},
        "u8": {"dtype": "uint8", "shape": [4], "names": None},
        "b1": {"dtype": "bool", "shape": [1], "names": None},
        "b3": {"dtype": "bool", "shape": [3], "names": None},
        "s": {"dtype": "string", "shape": [1], "names": None},
        "observation.images.cam": {"dtype": "video", "shape": [24, 32, 3], "names": _IMAGE},
        "observation.images.depth": {
            "dtype": "video",
            "shape": [24, 32, 1],
            "names": _IMAGE,
            "info": {"is_depth_map": True},
        },
        "observation.images.still": {"dtype": "image", "shape": [8, 12, 3], "names": _IMAGE},
    },
    "delta_timestamps": {
        "f16": [0.0, 1 / FPS],
        "f64": [-1 / FPS, 0.0],
        "m64": [-1 / FPS, 0.0, 1 / FPS],
        "i32": [0.0, 1 / FPS],
        "u8": [0.0, 2 / FPS],
        "b1": [0.0, 1 / FPS],
        "observation.images.cam": [-1 / FPS, 0.0],
        "observation.images.depth": [0.0, 1 / FPS],
        "observation.images.still": [-2 / FPS, 0.0],
    },
}


def value(feature: dict[str, Any], number: int, episode: int, frame: int) -> Any:
    """Feature ``number``'s value at ``(episode, frame)``: floats with digits float32 cannot hold
    (``x.1``), integers near the edges of their dtype, alternating booleans, strings naming the frame,
    camera pixels ``(37e + 11f + 3y + 5x + 50c + number) % 256``; depth in millimetres."""
    dtype, shape = feature["dtype"], tuple(feature["shape"])
    if dtype == "string":
        return f"episode {episode} frame {frame} #{number}"
    if dtype in ("image", "video"):
        height, width, channels = shape
        y, x, c = np.meshgrid(np.arange(height), np.arange(width), np.arange(channels), indexing="ij")
        if (feature.get("info") or {}).get("is_depth_map"):
            return (400 + 50 * episode + 7 * frame + 3 * y + 2 * x + number).astype(np.uint16)
        return ((37 * episode + 11 * frame + 3 * y + 5 * x + 50 * c + number) % 256).astype(np.uint8)
    base = np.arange(int(np.prod(shape))).reshape(shape)
    step = episode * 100 + frame + number
    if dtype == "bool":
        return (base + step) % 2 == 0
    if dtype.startswith("float"):
        return (step * 1.1 + base / 3 + 0.1).astype(dtype)
    span = _INT_SPANS.get(dtype, 2**16)
    return (_INT_OFFSETS.get(dtype, 0) + (step * 7 + base * 3) % span).astype(dtype)


def tensor_json(key: str, tensor: Any, feature: dict[str, Any] | None) -> Any:
    import torch

    if not isinstance(tensor, torch.Tensor):
        return tensor
    described = {"shape": list(tensor.shape), "dtype": str(tensor.dtype).removeprefix("torch.")}
    if feature is not None and feature["dtype"] in ("image", "video"):  # frames and depth maps, bit-exact
        return described | {"sha256": hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()}
    return described | {"values": tensor.flatten().tolist()}


def write(job: dict[str, Any], root: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {key: dict(f, shape=tuple(f["shape"])) for key, f in job["features"].items()}
    use_videos = any(f["dtype"] == "video" for f in features.values())
    name, fps = f"local/{job['name']}", job["fps"]
    dataset = LeRobotDataset.create(name, fps, features, root=root, use_videos=use_videos)
    for episode, length in enumerate(job["lengths"]):
        for frame in range(length):
            row = {key: value(f, number, episode, frame) for number, (key, f) in enumerate(features.items())}
            dataset.add_frame(row | {"task": f"task {episode % 2}"})
        dataset.save_episode()
    dataset.finalize()
    shutil.rmtree(root / "images", ignore_errors=True)  # the image writer's PNGs, already in the parquet


def record(
    root: Path, delta_timestamps: dict[str, list[float]] | None, depth_output_unit: str = "mm"
) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset(
        f"local/{root.name}",
        root=root,
        delta_timestamps=delta_timestamps or None,
        depth_output_unit=depth_output_unit,
    )
    features = dataset.meta.features
    items = [
        {key: tensor_json(key, v, features.get(key)) for key, v in dataset[index].items()}
        for index in range(len(dataset))
    ]
    (root / "items.json").write_text(json.dumps(items))
    (root / "meta_record.json").write_text(json.dumps(meta_record(dataset.meta, root)))


def meta_record(meta: Any, root: Path) -> dict[str, Any]:
    """What LeRobot's metadata says: ``stats`` arrays (dtype, shape, values), shapes, and the episode
    table's ``stats/*`` columns as stored (Arrow type and values: LeRobot's loader drops them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def arrays(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: arrays(v) for key, v in value.items()}
        array = np.asarray(value)
        return {"shape": list(array.shape), "dtype": str(array.dtype), "values": array.tolist()}

    files = sorted((root / "meta/episodes").glob("*/*.parquet"))
    table = pa.concat_tables([pq.read_table(path) for path in files])
    episode_stats = {
        name: {"type": str(table.schema.field(name).type), "values": table[name].to_pylist()}
        for name in table.column_names
        if name.startswith("stats/")
    }
    shapes = {key: list(shape) for key, shape in meta.shapes.items()}
    return {"stats": arrays(meta.stats), "shapes": shapes, "episode_stats": episode_stats}


def main(args: list[str]) -> None:
    import torchvision_shim  # noqa: F401  (the lerobot venv's CPU torchvision stand-in)

    if args[0] == "record":
        record(Path(args[1]), json.loads(args[2]), *args[3:])
        sys.stdout.write(json.dumps([Path(args[1]).name]) + "\n")
        return
    jobs = [MATRIX] if args[0] == "matrix" else json.loads(Path(args[0]).read_text())
    out = Path(args[1])
    for job in jobs:
        shutil.rmtree(out / job["name"], ignore_errors=True)
        write(job, out / job["name"])
        record(out / job["name"], job["delta_timestamps"])
    sys.stdout.write(json.dumps([job["name"] for job in jobs]) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
