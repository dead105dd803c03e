"""`lerobot-wds check` timed: on the planning benchmark's synthetic DROID-size source, on g1 beside `convert`.

    python scripts/bench_check.py [--episodes 130000] [--rounds 2]

1. The synthetic LeRobot v3 source of ``scripts/bench_convert_plan.py`` (130,000 episodes x 3 cameras,
   sparse data/video files: sizes real, bytes never written) checked at level ``meta`` (info.json, the
   episode table, tasks, every referenced file's existence: no data or video file read), in a fresh
   process, timed apart from the imports. Target (issue 25): under 10 s.
2. The real ``g1`` fixture (10 episodes, 480x640 AV1, 35 MB): ``check`` at level ``videos`` (each mp4's
   packet index demuxed, no decoding) and ``convert`` of the same source, each the best of ``--rounds``
   runs in this process. ``convert`` runs the same checks first, so its time includes them.

Results go to benchmarks/results/check.json with the load average before and after: the machine is
shared, so times are an upper bound when the load is high.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_convert_plan import build_source  # noqa: E402  (the planning benchmark's synthetic source)


def measure(root: Path) -> dict[str, object]:
    """In a fresh process: ``check_source`` at level meta, timed apart from the imports."""
    started = time.perf_counter()
    import pandas  # noqa: F401  (imported lazily by the metadata read; timed apart as bench_convert_plan does)

    from lerobot_wds.converter.check import CheckConfig, check_source

    import_s = time.perf_counter() - started
    started = time.perf_counter()
    report = check_source(str(root), CheckConfig(level="meta"))
    check_s = time.perf_counter() - started
    return {
        "episodes": report.num_episodes,
        "findings": [f.check for f in report.findings],
        "import_s": round(import_s, 3),
        "check_s": round(check_s, 3),
    }


def synthetic(num_episodes: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "source"
        build_source(root, num_episodes)
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(root)], capture_output=True, text=True, check=False
        )
        if child.returncode != 0:
            raise SystemExit(f"checking {num_episodes} episodes failed:\n{child.stderr}")
    result: dict[str, object] = json.loads(child.stdout.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    return result


def g1(rounds: int) -> dict[str, object]:
    from lerobot_wds import ConvertConfig, convert
    from lerobot_wds.converter.check import CheckConfig, check_source

    source = ROOT.parent / "shared/fixtures/g1"
    check_s, convert_s = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        report = check_source(str(source), CheckConfig(level="videos"))
        check_s.append(time.perf_counter() - started)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            convert(str(source), str(Path(tmp) / "out"), ConvertConfig())
            convert_s.append(time.perf_counter() - started)
            shutil.rmtree(Path(tmp) / "out")
    result = {
        "source_mb": round(sum(p.stat().st_size for p in source.rglob("*") if p.is_file()) / 1e6, 1),
        "episodes": report.num_episodes,
        "findings": [f.check for f in report.findings],
        "check_videos_s": round(min(check_s), 3),
        "convert_s": round(min(convert_s), 3),
        "check_share_of_convert": round(min(check_s) / min(convert_s), 3),
        "rounds": rounds,
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        print(json.dumps(measure(Path(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=130_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/check.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    record = {
        "command": "python scripts/bench_check.py",
        "machine": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
        "target": {"synthetic_episodes": 130_000, "check_s": 10},
        "synthetic_meta_level": synthetic(args.episodes),
        "g1_videos_level_vs_convert": g1(args.rounds),
    }
    record["load_avg_before_after"] = [round(v, 2) for v in (*load_before, *os.getloadavg())]
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
