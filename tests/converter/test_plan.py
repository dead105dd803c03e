"""Planning: linear, and equal to the first (quadratic) planner's estimates and shards on every fixture."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import DATA, fixture_dir

from lerobot_wds import ConvertConfig, convert, read_manifest
from lerobot_wds.converter import plan_conversion
from lerobot_wds.converter.plan import estimate_source_bytes, plan_shards
from lerobot_wds.converter.source import LeRobotSource, SourceEpisode, open_source

# Recorded on every fixture by the first planner (per-episode estimate, commit 8f80515), before
# planning was made linear: the shards it planned, hence the shard bytes, must not change.
GOLDEN = json.loads((Path(__file__).parent / "plan_golden.json").read_text())
SELECTION = "selection % 3 != 1, total // 3"


def reference_estimate(source: LeRobotSource, episode: SourceEpisode) -> int:
    """The first planner, written out: scan every episode for each file's duration and rows."""
    total = 0.0
    for span in episode.videos.values():
        ends = [
            s.to_timestamp for e in source.episodes.values() for s in e.videos.values() if s.file == span.file
        ]
        duration = max(ends)
        share = (span.to_timestamp - span.from_timestamp) / duration if duration > 0 else 0.0
        total += os.path.getsize(source.root / span.file) * share
    rows = sum(e.length for e in source.episodes.values() if e.data_file == episode.data_file)
    total += os.path.getsize(source.root / episode.data_file) * episode.length / max(rows, 1)
    return round(total)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_plans_equal_the_recorded_ones(name: str) -> None:
    golden = GOLDEN[name]
    source = open_source(str(fixture_dir(name)))
    episodes = source.select(None)
    estimates = estimate_source_bytes(source, episodes)
    assert {str(k): v for k, v in estimates.items()} == golden["estimated_bytes"]
    assert estimates == {ep.episode_index: reference_estimate(source, ep) for ep in episodes}
    for target, shards in golden["plans"].items():
        if target == SELECTION:
            selected = [ep for ep in episodes if ep.episode_index % 3 != 1]
            assert estimate_source_bytes(source, selected) == {
                e.episode_index: estimates[e.episode_index] for e in selected
            }
            plans = plan_shards(selected, estimates, sum(estimates.values()) // 3)
        else:
            plans = plan_shards(episodes, estimates, int(target))
        assert [list(p.episodes) for p in plans] == shards, f"{name}, target {target}"


def test_estimates_sum_to_the_source_files() -> None:
    source = open_source(str(DATA / "h264"))
    files = {e.data_file for e in source.episodes.values()}
    files |= {s.file for e in source.episodes.values() for s in e.videos.values()}
    total = sum(os.path.getsize(source.root / f) for f in files)
    assert abs(plan_conversion(str(DATA / "h264")).source_bytes - total) <= len(source.episodes)


def test_convert_writes_the_planned_shards(tmp_path: Path) -> None:
    config = ConvertConfig(shard_size_mb=0.3, episodes=(0, 2, 3, 5, 8, 9, 10, 11, 17))
    plan = plan_conversion(str(DATA / "multi"), config)
    assert len(plan.shards) > 1
    manifest = read_manifest(str(convert(str(DATA / "multi"), str(tmp_path / "out"), config).dest))
    assert [(s.path, s.episodes) for s in manifest.shards] == [(p.path, p.episodes) for p in plan.shards]
    rows = plan.to_dict()["shards"]
    assert [r["num_frames"] for r in rows] == [s.num_frames for s in manifest.shards]
    assert sum(r["estimated_bytes"] for r in rows) == plan.source_bytes
