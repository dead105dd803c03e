"""Messy sources: `lerobot-wds check` names every defect at once, `convert` lists them all before writing,
`--skip-bad-episodes` converts exactly the rest, and the streams win over info.json.

The sources are written on the fly by ``tests/messy_sources.py`` with pyarrow and PyAV (not LeRobot's
writer): MPEG-4 Part 2 with a GOP of 12, keys ``actions``/``state``/``image``, info.json claiming h264,
``to_timestamp = (length - 1) / fps``; ``add_defects`` breaks one episode per defect kind.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import fixture_dir, read_samples
from messy_sources import (
    DATA_FILE,
    DEFECTS,
    LENGTHS,
    ORPHAN_EPISODE,
    add_defects,
    rename_video_folder,
    video_file,
    write_custom_dataset,
)

from lerobot_wds import ConvertConfig, ShardedLeRobotDataset, convert, export, read_manifest
from lerobot_wds import format as fmt
from lerobot_wds.cli import main
from lerobot_wds.converter.check import CheckConfig, check_source

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests/data"
BAD = sorted(e for e, check in DEFECTS.items() if check != "rows.timestamp_grid")  # error-level ones
KEPT = [e for e in range(len(LENGTHS)) if e not in BAD]
DELTAS = {"actions": [0.0, 0.1, 0.2], "image": [-0.1, 0.0]}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("messy")
    clean = write_custom_dataset(root / "clean")
    bad = root / "bad"
    shutil.copytree(clean, bad)
    add_defects(bad)
    return {"clean": clean, "bad": bad}


@pytest.fixture(scope="module")
def skipped(sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    dest = str(tmp_path_factory.mktemp("skipped") / "out")
    convert(str(sources["bad"]), dest, ConvertConfig(skip_bad_episodes=True))
    return dest


@pytest.fixture(scope="module")
def clean_shards(sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    dest = str(tmp_path_factory.mktemp("clean") / "out")
    convert(str(sources["clean"]), dest)
    return dest


@pytest.mark.parametrize("name", ["tiny", "multi", "h264", "depth", "images", "g1"])
def test_lerobot_written_fixtures_are_clean(name: str) -> None:
    report = check_source(str(fixture_dir(name)))
    assert report.findings == [], report.text()
    assert report.ok
    assert report.num_episodes == len(read_episode_indices(fixture_dir(name)))


def read_episode_indices(root: Path) -> list[int]:
    return sorted(
        i
        for p in root.glob("meta/episodes/*/*.parquet")
        for i in pq.read_table(p)["episode_index"].to_pylist()
    )


def test_the_custom_dataset_has_only_the_codec_lie(sources: dict[str, Path]) -> None:
    report = check_source(str(sources["clean"]))
    assert [(f.check, f.severity) for f in report.findings] == [("videos.codec", "warning")]
    assert "info.json says h264, the stream is mpeg4 (MPEG-4 part 2)" in report.findings[0].message
    assert len(report.findings[0].files) == len(LENGTHS)
    assert report.streams == {"image": [{"codec": "mpeg4", "pix_fmt": "yuv420p", "width": 64, "height": 48}]}


def test_one_check_names_every_defect(sources: dict[str, Path]) -> None:
    report = check_source(str(sources["bad"]))
    by_check: dict[str, set[int]] = {}
    for finding in report.findings:
        by_check.setdefault(finding.check, set()).update(finding.episodes)
    for episode, check in DEFECTS.items():
        assert episode in by_check.get(check, set()), (episode, check, report.text())
    assert sorted(report.bad_episodes()) == BAD  # the off-grid timestamps are a warning only
    orphans = next(f for f in report.findings if f.check == "rows.orphans")
    assert orphans.severity == "warning"
    assert orphans.files == (DATA_FILE,)
    assert f"2 rows of episode_index [{ORPHAN_EPISODE}]" in orphans.message
    missing = next(f for f in report.findings if f.check == "files.missing")
    assert missing.files == (video_file(1),)
    assert "videos.codec" in by_check
    keyframe = next(f for f in report.findings if f.check == "videos.keyframe")
    assert "convert refuses this episode" in keyframe.hint
    assert "--skip-bad-episodes" in keyframe.hint


def test_check_command_json_and_exit_codes(
    sources: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(sources["bad"]), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["bad_episodes"] == BAD
    for finding in report["findings"]:
        assert set(finding) == {"check", "severity", "episodes", "files", "message", "hint"}
        assert finding["severity"] in ("error", "warning")
    assert main(["check", str(sources["clean"])]) == 0  # warnings only
    assert "0 error(s), 1 warning(s)" in capsys.readouterr().out
    assert main(["check", str(sources["bad"]), "--episodes", "0,8-9", "--level", "rows"]) == 0
    with pytest.raises(SystemExit) as usage:
        main(["check", str(sources["bad"]), "--level", "nope"])
    assert usage.value.code == 2


def test_a_renamed_video_folder_is_named_with_the_near_miss(sources: dict[str, Path], tmp_path: Path) -> None:
    source = tmp_path / "renamed"
    shutil.copytree(sources["clean"], source)
    rename_video_folder(source)
    report = check_source(str(source), CheckConfig(level="meta"))
    [finding] = report.findings
    assert (finding.check, finding.severity) == ("files.missing", "error")
    assert finding.episodes == tuple(range(len(LENGTHS)))
    assert len(finding.files) == len(LENGTHS)
    assert "the files are under 'video/' while info.json's template says 'videos/'" in finding.hint


def test_a_file_in_another_chunk_or_case_is_the_near_miss(sources: dict[str, Path], tmp_path: Path) -> None:
    source = tmp_path / "moved"
    shutil.copytree(sources["clean"], source)
    (source / video_file(2)).rename(source / video_file(2).replace("file-002", "File-002"))
    moved = source / "videos/image/chunk-001"
    moved.mkdir()
    (source / video_file(3)).rename(moved / "file-003.mp4")
    report = check_source(str(source), CheckConfig(level="meta"))
    hints = {f.files: f.hint for f in report.findings}
    assert "'videos/image/chunk-000/File-002.mp4' exists (other letter case)" in hints[(video_file(2),)]
    assert "'file-003.mp4' exists at 'videos/image/chunk-001/file-003.mp4'" in hints[(video_file(3),)]
    assert report.bad_episodes().keys() == {2, 3}


def test_convert_lists_every_error_and_writes_nothing(sources: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.raises(ValueError, match="found before writing anything") as failure:
        convert(str(sources["bad"]), str(dest))
    message = str(failure.value)
    for check in {c for c in DEFECTS.values() if c != "rows.timestamp_grid"}:
        assert f"error: {check}:" in message
    assert f"{len(BAD)} of {len(LENGTHS)} selected episode(s)" in message
    assert f"convert the other {len(KEPT)} episode(s) with --skip-bad-episodes" in message
    assert not dest.exists() or not any(dest.rglob("*.tar"))
    assert not (dest / fmt.MANIFEST_NAME).exists()


def test_dry_run_lists_the_errors_too(sources: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(sources["bad"]), "/nowhere", "--dry-run"]) == 2
    assert "error: files.missing" in capsys.readouterr().err
    assert (
        main(["convert", str(sources["bad"]), "/nowhere", "--dry-run", "--json", "--skip-bad-episodes"]) == 0
    )
    plan = json.loads(capsys.readouterr().out)
    assert [s["episode_index"] for s in plan["skipped_episodes"]] == BAD
    assert plan["num_episodes"] == len(KEPT)


def test_skip_bad_episodes_converts_exactly_the_rest(skipped: str) -> None:
    manifest = read_manifest(skipped)
    assert [e.episode_index for e in manifest.episodes] == KEPT
    assert [s.episode_index for s in manifest.skipped_episodes] == BAD
    reasons = {s.episode_index: s for s in manifest.skipped_episodes}
    for episode in BAD:
        assert reasons[episode].checks == (DEFECTS[episode],)
        assert f"{DEFECTS[episode]}: " in reasons[episode].reason
    assert reasons[3].reason == "rows.frame_index: episode 3: row 5 has frame_index 6"
    assert set(read_samples(Path(skipped))) == set(KEPT)


def test_meta_beside_the_shards_describes_the_kept_episodes(skipped: str, sources: dict[str, Path]) -> None:
    root = Path(skipped)
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"]) == (len(KEPT), sum(LENGTHS[e] for e in KEPT))
    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet")
    assert episodes["episode_index"].to_pylist() == KEPT
    stats = json.loads((root / "meta/stats.json").read_text())
    rows = pq.read_table(sources["clean"] / DATA_FILE).to_pandas()
    actions = np.stack(rows[rows["episode_index"].isin(KEPT)]["actions"].to_list()).astype(np.float64)
    assert stats["actions"]["count"] == [len(actions)]
    np.testing.assert_allclose(stats["actions"]["mean"], actions.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats["actions"]["std"], actions.std(0), rtol=1e-9)
    assert stats["actions"]["min"] == actions.min(0).tolist()
    assert stats["actions"]["max"] == actions.max(0).tolist()


def test_kept_episodes_read_as_the_clean_conversion(skipped: str, clean_shards: str) -> None:
    """Every item of the kept episodes equals the clean source's, but for the deliberately jittered
    timestamp of episode 5 (a warning, converted as recorded)."""
    ours = ShardedLeRobotDataset(skipped, delta_timestamps=DELTAS)
    clean = ShardedLeRobotDataset(clean_shards, delta_timestamps=DELTAS)
    differing = []
    for entry in read_manifest(skipped).episodes:
        for index in range(entry.dataset_from_index, entry.dataset_from_index + entry.num_frames):
            got, want = ours.item_at(index), clean.item_at(index)
            assert set(got) == set(want)
            differing += [(index, k) for k in want if not _equal(got[k], want[k])]
    start = sum(LENGTHS[:5])
    assert differing == [(start + 3, "timestamp")]


def _equal(a: Any, b: Any) -> bool:
    if hasattr(a, "numpy"):
        return bool(a.shape == b.shape and a.dtype == b.dtype and (a == b).all())
    return bool(a == b)


def test_the_streams_win_over_info_json(
    skipped: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], sources: dict[str, Path]
) -> None:
    manifest = read_manifest(skipped)
    assert manifest.streams == {
        "image": [{"codec": "mpeg4", "pix_fmt": "yuv420p", "width": 64, "height": 48}]
    }
    sample = read_samples(Path(skipped))[KEPT[0]]
    meta = fmt.EpisodeMeta.from_json(sample[fmt.META_SUFFIX], "test")
    assert meta.cameras["image"].stream() == manifest.streams["image"][0]
    assert main(["inspect", skipped, "--json"]) == 0
    camera = json.loads(capsys.readouterr().out)["cameras"]["image"]
    assert (camera["codec"], camera["info_json_says"]) == ("mpeg4", {"codec": "h264"})
    assert main(["inspect", skipped]) == 0
    text = capsys.readouterr().out
    assert "(source info.json says codec h264)" in text
    assert f"skipped {len(BAD)} source episode(s) with errors" in text
    assert main(["-q", "convert", str(sources["clean"]), str(tmp_path / "c")]) == 0
    assert main(["convert", str(sources["clean"]), str(tmp_path / "c2")]) == 0
    assert "the shards hold mpeg4 yuv420p 64x48 as copied; the source's info.json says codec h264" in (
        capsys.readouterr().out
    )
    export(skipped, str(tmp_path / "exported"))
    info = json.loads((tmp_path / "exported/meta/info.json").read_text())
    assert info["features"]["image"]["info"]["video.codec"] == "mpeg4"
    # the export tells the truth about its streams; episode 5's jittered timestamp went along (renumbered 1)
    findings = check_source(str(tmp_path / "exported")).findings
    assert [(f.check, f.episodes) for f in findings] == [("rows.timestamp_grid", (1,))]


def test_a_repaired_episode_is_added_by_an_update(sources: dict[str, Path], tmp_path: Path) -> None:
    source, dest = tmp_path / "src", str(tmp_path / "out")
    shutil.copytree(sources["bad"], source)
    convert(str(source), dest, ConvertConfig(skip_bad_episodes=True))
    shutil.copy(sources["clean"] / video_file(1), source / video_file(1))
    updated = convert(str(source), dest, ConvertConfig(skip_bad_episodes=True)).manifest
    assert updated.generation == 1
    assert [e.episode_index for e in updated.episodes] == [*KEPT, 1]
    assert [s.episode_index for s in updated.skipped_episodes] == [e for e in BAD if e != 1]
    assert json.loads((Path(dest) / "meta/info.json").read_text())["total_episodes"] == len(KEPT) + 1


def test_info_json_defects_are_reported_together(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(DATA / "tiny", source)
    info = json.loads((source / "meta/info.json").read_text())
    info["fps"] = 0
    info["video_path"] = "videos/{camera}/file-{file_index:03d}.mp4"
    info["features"]["action"]["shape"] = "six"
    (source / "meta/info.json").write_text(json.dumps(info))
    report = check_source(str(source))
    [finding] = report.findings
    assert finding.check == "meta.unreadable"
    assert not finding.episodes
    for part in ("fps 0", "video_path", "feature 'action' has shape 'six'"):
        assert part in finding.message
    with pytest.raises(ValueError, match=r"fps 0.*'action'.*video_path"):
        convert(str(source), str(tmp_path / "out"))


@pytest.mark.lerobot
@pytest.mark.skipif(not os.environ.get("LEROBOT_VENV"), reason="LEROBOT_VENV (a LeRobot venv) not given")
def test_items_equal_lerobots_on_a_source_lerobot_did_not_write(
    sources: dict[str, Path], clean_shards: str, skipped: str, tmp_path: Path
) -> None:
    """LeRobot 0.6.1's own LeRobotDataset over the PyAV-written source (MPEG-4 Part 2, GOP 12): every item
    of the clean conversion equals LeRobot's, frames pixel-exact; so do the kept episodes' items of the
    --skip-bad-episodes conversion of its broken copy (but episode 5's jittered timestamp)."""
    source = tmp_path / "clean"
    shutil.copytree(sources["clean"], source)
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[2]); "
        "from lerobot_fixture import write_golden; "
        f"write_golden(Path(sys.argv[1]), 10, {DELTAS!r}, hashed=lambda k, v: v.ndim >= 3)"
    )
    python = Path(os.environ["LEROBOT_VENV"]) / "bin/python"
    completed = subprocess.run(
        [python, "-c", script, source, ROOT / "scripts"], capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    with gzip.open(source / "golden.jsonl.gz", "rt") as f:
        header, *lines = (json.loads(line) for line in f)
    golden = {line["index"]: line["item"] for line in lines}
    assert header["num_frames"] == sum(LENGTHS)
    for url, expected_differences in ((clean_shards, []), (skipped, [(sum(LENGTHS[:5]) + 3, "timestamp")])):
        dataset = ShardedLeRobotDataset(url, delta_timestamps=DELTAS)
        differing = []
        for entry in read_manifest(url).episodes:
            for index in range(entry.dataset_from_index, entry.dataset_from_index + entry.num_frames):
                item = dataset.item_at(index)
                assert set(item) == set(golden[index])
                differing += [
                    (index, k) for k, want in golden[index].items() if not _golden_equal(item[k], want)
                ]
        assert differing == expected_differences, url


def _golden_equal(got: Any, want: Any) -> bool:
    if not isinstance(want, dict):
        return bool(got == want)
    if [*got.shape] != want["shape"] or str(got.dtype) != f"torch.{want['dtype']}":
        return False
    if "sha256" in want:
        return hashlib.sha256(got.contiguous().numpy()).hexdigest() == want["sha256"]
    return bool(got.flatten().tolist() == want["values"])


def test_a_source_in_s3_is_checked_in_place(
    sources: dict[str, Path], s3_server: dict, s3_bucket: str, tmp_path: Path
) -> None:
    """The same findings from a real S3 server (files listed, parquet and mp4 headers read through
    fsspec, nothing downloaded); convert from S3 checks meta/ and the listing before any task runs."""
    import s3fs

    s3fs.S3FileSystem(**s3_server).put(str(sources["bad"]), f"{s3_bucket}/bad", recursive=True)
    url = f"s3://{s3_bucket}/bad"
    local = check_source(str(sources["bad"]))
    remote = check_source(url, CheckConfig(storage_options=s3_server))
    assert [(f.check, f.episodes, f.files) for f in remote.findings] == [
        (f.check, f.episodes, f.files) for f in local.findings
    ]
    config = ConvertConfig(source_storage_options=s3_server, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"error: files\.missing(.|\n)*error: tasks\.missing") as failure:
        convert(url, str(tmp_path / "out"), config)
    assert "rows.count" not in str(failure.value)  # a remote source's rows are read by the tasks
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.mp4"))


def test_deep_decodes_what_stream_copy_would_write(sources: dict[str, Path], tmp_path: Path) -> None:
    """A zeroed packet in the middle of episode 9's mp4: its index and headers are intact, so only
    ``--deep`` (cut as convert cuts, then decode) finds it; the LeRobot-written fixtures decode whole."""
    import av

    source = tmp_path / "src"
    shutil.copytree(sources["clean"], source)
    path = source / video_file(9)
    with av.open(str(path)) as container:
        entry = container.streams.video[0].index_entries[12]
    data = bytearray(path.read_bytes())
    data[entry.pos : entry.pos + entry.size] = bytes(entry.size)
    path.write_bytes(bytes(data))
    assert check_source(str(source)).ok
    report = check_source(str(source), CheckConfig(level="deep"))
    assert [(f.check, f.episodes) for f in report.errors] == [("videos.decode", (9,))]
    assert "episode 9 camera 'image'" in report.errors[0].message
    assert check_source(str(DATA / "h264"), CheckConfig(level="deep")).findings == []


def test_an_interrupted_skipping_conversion_notices_a_repair(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    from lerobot_wds.converter.convert import convert_part

    source, dest = tmp_path / "src", str(tmp_path / "out")
    shutil.copytree(sources["bad"], source)
    config = ConvertConfig(skip_bad_episodes=True)
    convert_part(str(source), dest, config, tasks=2, task_index=0)  # records the plan, publishes nothing
    shutil.copy(sources["clean"] / video_file(1), source / video_file(1))
    with pytest.raises(ValueError, match="the episodes its checks skip differ"):
        convert(str(source), dest, config)
