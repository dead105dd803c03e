"""The command line: convert, verify, inspect, through `main(argv)` as a user would type them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import DATA

from lerobot_wds.cli import main
from lerobot_wds.converter import ConvertConfig, plan_conversion


def test_convert_verify_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "out"
    assert main(["convert", str(DATA / "multi"), str(dest), "--episodes", "0,2,5-7", "--workers", "2"]) == 0
    summary = capsys.readouterr().out
    assert "5 episodes" in summary
    assert "overhead vs source" in summary
    assert main(["verify", str(dest)]) == 0
    assert "5 episodes checked: OK" in capsys.readouterr().out
    assert main(["inspect", str(dest)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 5
    assert info["cameras"] == {"observation.images.front": "av1", "observation.images.wrist": "av1"}


def test_verify_exits_non_zero_on_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "out"
    assert main(["convert", str(DATA / "tiny"), str(dest)]) == 0
    shard = dest / "shards" / "shard-000000.tar"
    shard.write_bytes(shard.read_bytes()[:-20000])
    assert main(["verify", str(dest)]) == 1
    assert "sha256" in capsys.readouterr().out


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert", str(DATA / "tiny"), str(tmp_path / "x"), "--episodes", "a-b"])


def test_convert_dry_run_prints_the_plan_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "out"
    assert main(["convert", str(DATA / "multi"), str(dest), "--dry-run", "--shard-size-mb", "0.1"]) == 0
    text = capsys.readouterr().out
    plan = plan_conversion(str(DATA / "multi"), ConvertConfig(shard_size_mb=0.1))
    assert len(plan.shards) > 11  # long enough for the table to show only its first and last rows
    assert f"{len(plan.shards)} shards, 24 episodes, 1,852 frames" in text
    assert f"({len(plan.shards) - 10} more shards)" in text
    last = plan.shard_rows()[-1]
    assert f"{last['episodes'][0]}..{last['episodes'][-1]}" in text
    assert f"{plan.source_bytes / 1e6:.1f}" in text.splitlines()[-2]  # the total row
    assert main(["convert", str(DATA / "multi"), str(dest), "--dry-run", "--json", "--episodes", "3-9"]) == 0
    assert (
        json.loads(capsys.readouterr().out)
        == plan_conversion(str(DATA / "multi"), ConvertConfig(episodes=tuple(range(3, 10)))).to_dict()
    )
    assert not dest.exists()
    assert main(["convert", str(DATA / "multi"), str(dest), "--json"]) == 2
    assert "--json: applies to --dry-run only" in capsys.readouterr().err
    assert not dest.exists()
