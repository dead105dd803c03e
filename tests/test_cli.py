"""The command line: convert, verify, inspect, through `main(argv)` as a user would type them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import DATA

from lerobot_wds.cli import main


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
