"""Planning: the estimate and the shard plan equal the ones recorded from the first (quadratic) planner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import fixture_dir

from lerobot_wds.converter.plan import estimate_source_bytes, plan_shards
from lerobot_wds.converter.source import open_source

# Recorded on every fixture by the planner of session 5 (per-episode estimate, commit 8f80515), before
# planning was made linear: the shards it planned, hence the shard bytes, must not change.
GOLDEN = json.loads((Path(__file__).parent / "plan_golden.json").read_text())
SELECTION = "selection % 3 != 1, total // 3"


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_plans_equal_the_recorded_ones(name: str) -> None:
    golden = GOLDEN[name]
    source = open_source(str(fixture_dir(name)))
    episodes = source.select(None)
    estimates = {ep.episode_index: estimate_source_bytes(source, ep) for ep in episodes}
    assert {str(k): v for k, v in estimates.items()} == golden["estimated_bytes"]
    for target, shards in golden["plans"].items():
        if target == SELECTION:
            selected = [ep for ep in episodes if ep.episode_index % 3 != 1]
            plans = plan_shards(selected, estimates, sum(estimates.values()) // 3)
        else:
            plans = plan_shards(episodes, estimates, int(target))
        assert [list(p.episodes) for p in plans] == shards, f"{name}, target {target}"
