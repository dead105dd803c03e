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
    summary = capsys.readouterr().out
    assert "5 episodes checked in" in summary
    assert summary.endswith("MB/s): OK\n")
    assert main(["inspect", str(dest), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 5
    assert info["frames"] == 73 + 98 + 43 + 104 + 116  # episodes 0, 2, 5, 6, 7 of the fixture
    assert info["hours"] == round(info["frames"] / 15 / 3600, 4)
    camera = {"codec": "av1", "pix_fmt": "yuv420p", "height": 96, "width": 128, "depth": False}
    assert info["cameras"] == {"observation.images.front": camera, "observation.images.wrist": camera}
    assert info["tasks"] == [
        {"task_index": 0, "task": "pick up the red cube and place it in the bin", "episodes": 1},
        {"task_index": 1, "task": "push the T-shaped block onto the target", "episodes": 1},
        {"task_index": 2, "task": "open the top drawer", "episodes": 2},
        {"task_index": 3, "task": "stack the green cup on the blue cup", "episodes": 1},
    ]
    assert main(["inspect", str(dest)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[:2] == ["episodes", "5"]
    assert f"frames {info['frames']:,} at 15 fps" in " ".join(table[2].split())
    assert f"bytes {info['bytes']:,}" in " ".join(table[5].split())
    assert "observation.images.wrist av1 yuv420p 128x96" in [" ".join(line.split()) for line in table]
    assert "2 2 open the top drawer" in [" ".join(line.split()) for line in table]


def test_verify_exits_non_zero_on_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "out"
    assert main(["convert", str(DATA / "tiny"), str(dest)]) == 0
    shard = dest / "shards" / "shard-000000.tar"
    shard.write_bytes(shard.read_bytes()[:-20000])
    assert main(["verify", str(dest)]) == 1
    assert "sha256" in capsys.readouterr().out


def test_inspect_names_depth_maps_and_their_codec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "out"
    assert main(["convert", str(DATA / "depth"), str(dest)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(dest), "--json"]) == 0
    cameras = json.loads(capsys.readouterr().out)["cameras"]
    depth = {"codec": "hevc", "pix_fmt": "gray12le", "height": 24, "width": 32, "depth": True}
    assert cameras["observation.images.depth"] == depth
    assert main(["inspect", str(dest)]) == 0
    assert "observation.images.depth hevc gray12le 32x24 depth" in " ".join(capsys.readouterr().out.split())


def test_inspect_gives_the_codec_of_a_re_encode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "out"
    assert main(["-q", "convert", str(DATA / "tiny"), str(dest), "--vcodec", "h264"]) == 0
    assert main(["inspect", str(dest), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["cameras"]["observation.images.front"]["codec"] == "h264"  # info.json still says av1
    assert set(info["psnr_db_vs_source"]["observation.images.front"]) == {"min", "mean"}
    assert main(["inspect", str(dest)]) == 0
    assert "PSNR vs source: observation.images.front min" in capsys.readouterr().out


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


def test_progress_and_summaries_or_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Bars with rates on stderr and a summary on stdout; --quiet leaves only problems (and the exit code).
    Two workers: datatrove's pool, whose stats summary must not reach the user's terminal either."""
    dest = tmp_path / "out"
    assert main(["convert", str(DATA / "tiny"), str(dest), "--workers", "2", "--shard-size-mb", "0.1"]) == 0
    out, err = capsys.readouterr()
    assert "6 episodes" in out
    assert "converting: 100%" in err
    assert "frames/s" in err
    assert "Stats" not in err  # datatrove's loguru summary
    assert main(["verify", str(dest)]) == 0
    out, err = capsys.readouterr()
    assert "episodes checked in" in out
    assert "MB/s): OK" in out
    assert "verifying: 100%" in err
    quiet = tmp_path / "quiet"
    assert main(["-q", "convert", str(DATA / "tiny"), str(quiet), "--workers", "2"]) == 0
    assert main(["--quiet", "verify", str(quiet)]) == 0
    assert main(["verify", str(quiet), "-q"]) == 0  # after the command too
    assert capsys.readouterr() == ("", "")
    shard = quiet / "shards" / "shard-000000.tar"
    shard.write_bytes(shard.read_bytes()[:-20000])
    assert main(["--quiet", "verify", str(quiet)]) == 1
    out, err = capsys.readouterr()
    assert "sha256" in out
    assert err == ""
