"""The main job on the bundled sample dataset: convert `tests/data/tiny`, verify it, and print a summary.

Run with `make demo` (sets everything up first). Writes to out/demo/.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lerobot_wds import ConvertConfig, convert, inspect_dataset, verify

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "data" / "tiny"  # written by LeRobot 0.6.1's LeRobotDataset writer
DEST = ROOT / "out" / "demo" / "tiny"


def main() -> int:
    result = convert(str(SOURCE), str(DEST), ConvertConfig(overwrite=True))
    manifest = result.manifest
    print(
        f"converted {SOURCE.relative_to(ROOT)} -> {DEST.relative_to(ROOT)}: "
        f"{manifest.num_episodes} episodes, "
        f"{manifest.num_frames} frames, {len(manifest.shards)} shard(s), {manifest.total_bytes / 1e3:.0f} kB "
        f"({result.overhead:+.1%} vs source) in {result.elapsed_s:.2f} s"
    )
    report = verify(str(DEST))
    print(f"verify: {report.episodes_checked} episodes, {'OK' if report.ok else report.problems}")
    print(json.dumps(inspect_dataset(str(DEST)), indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
