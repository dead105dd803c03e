"""Write tests/data/<name>/meta_golden.json: what ``LeRobotDataset(...).meta`` says of a fixture.

    /tmp/lerobot-venv/bin/python scripts/make_meta_golden.py [--names tiny multi h264 images]

Run with the LeRobot 0.6.1 venv (``bash ../shared/tools/lerobot-venv/setup.sh /tmp/lerobot-venv``).
Policies and their processors read a dataset's ``meta`` (``make_policy(cfg, ds_meta=dataset.meta)``,
normalisation from ``meta.stats``); ``tests/reader/test_meta.py`` checks ``ShardedLeRobotDataset.meta``
against these records, attribute for attribute, stats array for array (shape, dtype, values).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ATTRIBUTES = (
    "fps", "features", "robot_type", "image_keys", "video_keys", "camera_keys", "names", "shapes",
    "total_episodes", "total_frames", "total_tasks",
)  # fmt: skip


def array_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: array_json(v) for key, v in value.items()}
    array = np.asarray(value)
    return {"shape": list(array.shape), "dtype": str(array.dtype), "values": array.tolist()}


def record(root: Path) -> dict[str, Any]:
    import torchvision_shim  # noqa: F401  (the lerobot venv's CPU torchvision stand-in)
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    # the dataset's meta, as lerobot-train passes it to policies (depth stats rescaled to mm)
    meta = LeRobotDataset(f"local/{root.name}", root=root).meta
    out = {name: getattr(meta, name) for name in ATTRIBUTES}
    out["shapes"] = {key: list(shape) for key, shape in out["shapes"].items()}
    out["stats"] = array_json(meta.stats)
    return json.loads(json.dumps(out))  # tuples -> lists, as the test reads them back


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--names", nargs="+", default=["tiny", "multi", "h264", "images", "depth", "dtypes"])
    args = parser.parse_args()
    for name in args.names:
        path = ROOT / "tests/data" / name / "meta_golden.json"
        path.write_text(json.dumps(record(ROOT / "tests/data" / name), indent=1) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
