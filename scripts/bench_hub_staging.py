"""Converting to an ``hf://datasets`` repo: the staging folder's high-water mark against the dataset's size.

    python scripts/bench_hub_staging.py --source /tmp/droid-shaped [--shard-size-mb 16] [--staged 4]
        -> benchmarks/results/hub_staging.json

The repo is the tests' stand-in (tests/hubstandin.py: the ``HfApi`` calls publishing makes, answered on a
bucket of a real S3 server, SeaweedFS on 127.0.0.1), so the whole of ``convert(SRC, "hf://datasets/...")``
runs offline: shards pre-uploaded as they are finished and deleted, commits of 50, the manifest last. A
thread samples the shard files in staging (finished, or being written) every 5 ms.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

from benchenv import write_record

from lerobot_wds import ConvertConfig, convert
from lerobot_wds.converter import hub

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the S3 server and the Hub stand-in: one copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared/fixtures/g1")
    parser.add_argument("--shard-size-mb", type=float, default=16.0)
    parser.add_argument("--staged", type=int, default=4, help="ConvertConfig.hub_staged_shards")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/hub_staging.json")
    args = parser.parse_args()
    import s3fs
    from hubstandin import BucketHub, StagedShards
    from s3server import seaweedfs

    converting = importlib.import_module("lerobot_wds.converter.convert")  # the package exports convert()
    with tempfile.TemporaryDirectory(prefix="bench-hub-staging-") as tmp:
        (Path(tmp) / "weed").mkdir()
        with seaweedfs(Path(tmp) / "weed") as options:
            fs = s3fs.S3FileSystem(**options)
            fs.mkdir("hub")
            api = BucketHub(fs, "hub/repo")
            converting.hf_api = lambda storage_options: api  # the stand-in instead of HfApi
            converting.stage_update = lambda url, staging, opts: hub.stage_update(
                "s3://hub/repo", staging, options
            )
            staging = Path(tmp) / "staging"
            config = ConvertConfig(shard_size_mb=args.shard_size_mb, staging_dir=str(staging),
                                   hub_staged_shards=args.staged, workers=args.workers)  # fmt: skip
            started = time.perf_counter()
            with StagedShards(staging) as staged:
                result = convert(str(args.source), "hf://datasets/me/bench-wds", config)
            wall_s = time.perf_counter() - started
    shards = result.manifest.shards
    total = sum(s.size_bytes for s in shards)
    record = {
        "source": str(args.source), "shard_size_mb": args.shard_size_mb, "hub_staged_shards": args.staged,
        "workers": args.workers, "shards": len(shards), "dataset_mb": round(total / 1e6, 1),
        "largest_shard_mb": round(max(s.size_bytes for s in shards) / 1e6, 2),
        "staging_peak_files": staged.peak_files, "staging_peak_mb": round(staged.peak_bytes / 1e6, 2),
        "staging_peak_vs_dataset": round(staged.peak_bytes / total, 4), "commits": len(api.commits),
        "wall_s": round(wall_s, 1),
    }  # fmt: skip
    write_record(args.out.resolve(), record)
    print(record)


if __name__ == "__main__":
    main()
