"""A mixture's samples/s against its sources streamed alone, in the same run.

    python scripts/bench_mixture.py [--datasets multi g1] [--workers 0 2] [--repeats 2] [--batches 20]

Each dataset (a test fixture, or ../shared/fixtures/g1) is converted as two datasets, its first and
second half of episodes, into out/bench/<name>-a and -b. Workload as bench_read.py: batch 32 items,
`delta_timestamps = {action: 16 steps, first camera: [-1/fps, 0]}`, `collate_fn=lerobot_wds.collate`,
5 warm-up batches, then `--batches` timed. Rows per `num_workers`: source a alone, source b alone,
and `MixedDataset([a, b], weights=[0.5, 0.5])`; each measured `--repeats` times in rounds, the
fastest kept. "expected" is the rate of alternating the sources at those weights
(1 / (0.5 / a + 0.5 / b)); "mixture_vs_expected" is the mixture's cost (1.0 = none).
Results go to benchmarks/results/mixture.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench_read import FIXTURES, ROOT, delta_timestamps, time_batches, write_results

WEIGHTS = (0.5, 0.5)


def convert_halves(name: str) -> list[str]:
    from lerobot_wds import ConvertConfig, convert, read_manifest

    source = FIXTURES / name if name == "g1" else ROOT / "tests" / "data" / name
    urls = []
    for half in ("a", "b"):
        dest = ROOT / "out" / "bench" / f"{name}-{half}"
        if not (dest / "manifest.json").exists():
            episodes = sorted(_episodes(source))
            middle = len(episodes) // 2
            chosen = episodes[:middle] if half == "a" else episodes[middle:]
            convert(str(source), str(dest), ConvertConfig(episodes=tuple(chosen)))
        read_manifest(str(dest))
        urls.append(str(dest))
    return urls


def _episodes(source: Path) -> list[int]:
    import json

    return list(range(json.loads((source / "meta" / "info.json").read_text())["total_episodes"]))


def measure(kind: str, urls: list[str], workers: int, batches: int) -> dict[str, Any]:
    import torch

    from lerobot_wds import MixedDataset, ShardedLeRobotDataset, collate

    def source(url: str) -> ShardedLeRobotDataset:
        probe = ShardedLeRobotDataset(url)
        return ShardedLeRobotDataset(url, delta_timestamps=delta_timestamps(probe.fps, probe.camera_keys))

    if kind == "mixture":
        dataset: Any = MixedDataset([source(u) for u in urls], list(WEIGHTS), samples_per_epoch=10**7)
    else:
        dataset = source(urls[0 if kind == "a" else 1])
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, num_workers=workers, collate_fn=collate)
    return time_batches(loader, batches)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["multi", "g1"])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batches", type=int, default=20)  # 25 x 32 < a half of multi
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/mixture.json")
    args = parser.parse_args()
    rows = []
    for name in args.datasets:
        urls = convert_halves(name)
        for workers in args.workers:
            best: dict[str, float] = {}
            for _ in range(args.repeats):
                for kind in ("a", "b", "mixture"):
                    rate = measure(kind, urls, workers, args.batches)["samples_per_s"]
                    best[kind] = max(best.get(kind, 0.0), rate)
            expected = 1 / (WEIGHTS[0] / best["a"] + WEIGHTS[1] / best["b"])
            row: dict[str, Any] = {"dataset": name, "num_workers": workers}
            row |= {f"{kind}_samples_per_s": rate for kind, rate in best.items()}
            row |= {
                "expected_samples_per_s": round(expected, 1),
                "mixture_vs_expected": round(best["mixture"] / expected, 3),
            }
            print(row)
            rows.append(row)
    write_results(args.out, rows, weights=list(WEIGHTS), batch_size=32, batches=args.batches)


if __name__ == "__main__":
    main()
