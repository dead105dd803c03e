"""``export``: converted shards -> LeRobot v3 dataset. Round trips are byte-exact, the layout is the one
LeRobot's writer produced for the fixtures, and (with a LeRobot venv) LeRobot's own ``LeRobotDataset``
loads the export and returns the fixtures' golden items."""

from __future__ import annotations

import json
import os
import subprocess
import zlib
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import DATA, fixture_dir

from lerobot_wds import ConvertConfig, ShardedLeRobotDataset, ShardFormatError, convert, export, read_manifest
from lerobot_wds.cli import main
from lerobot_wds.converter.export import ExportConfig

# Small shards for multi and h264: several shards, so shard boundaries must come out the same too.
SHARD_SIZE_MB = {"tiny": 256.0, "multi": 0.4, "h264": 0.3, "depth": 256.0, "images": 256.0, "g1": 12.0}
ROOT = Path(__file__).resolve().parents[2]


def round_trip(name: str, tmp_path: Path) -> tuple[Path, Path, Path]:
    """source -> shards (a) -> LeRobot v3 (exported) -> shards (b)."""
    config = ConvertConfig(shard_size_mb=SHARD_SIZE_MB[name])
    first, exported, second = tmp_path / "a", tmp_path / "exported", tmp_path / "b"
    convert(str(fixture_dir(name)), str(first), config)
    export(str(first), str(exported))
    convert(str(exported), str(second), config)
    return first, exported, second


@pytest.mark.parametrize("name", ["tiny", "multi", "h264", "depth", "images", "g1"])
def test_round_trip_gives_byte_identical_shards(name: str, tmp_path: Path) -> None:
    """The manifests differ only in ``source`` (where each conversion read from: decided, and kept)."""
    first, _, second = round_trip(name, tmp_path)
    before, after = read_manifest(str(first)), read_manifest(str(second))
    assert len(before.shards) == len(after.shards) >= (2 if name in ("multi", "h264", "g1") else 1)
    for shard in before.shards:
        assert (first / shard.path).read_bytes() == (second / shard.path).read_bytes(), shard.path
    assert after.source.location == str(tmp_path / "exported")
    as_json = [json.loads(m.to_json()) for m in (before, after)]
    for manifest in as_json:
        manifest.pop("source")
    assert as_json[0] == as_json[1]


def packets(path: Path) -> tuple[list[tuple[Any, ...]], int | None]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        found = [
            (p.pts, p.dts, p.duration, p.is_keyframe, bytes(p)) for p in container.demux(stream) if p.size
        ]
        return found, stream.duration


def episode_table(root: Path) -> pa.Table:
    tables = [pq.read_table(path) for path in sorted(root.glob("meta/episodes/*/*.parquet"))]
    table = pa.concat_tables(tables)
    return table.select([c for c in table.column_names if not c.startswith("meta/episodes/")])


@pytest.mark.parametrize("name", ["multi", "h264", "depth"])
def test_export_reproduces_lerobots_own_layout(name: str, tmp_path: Path) -> None:
    """Files, rollover, episode table and every video packet (pts, dts, flags, bytes) as LeRobot wrote them.

    multi and h264 roll data and video files over (small size limits in their info.json); h264 and
    depth have packets with dts before pts. Only the muxer's version tag in the mp4 header differs.
    """
    source = DATA / name
    shards = tmp_path / "shards"
    convert(str(source), str(shards))
    exported = tmp_path / "exported"
    export(str(shards), str(exported))

    def files(root: Path, pattern: str) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.glob(pattern))

    assert files(exported, "videos/*/*/*.mp4") == files(source, "videos/*/*/*.mp4")
    assert files(exported, "data/*/*.parquet") == files(source, "data/*/*.parquet")
    for relative in files(source, "videos/*/*/*.mp4"):
        assert packets(exported / relative) == packets(source / relative), relative
    for relative in files(source, "data/*/*.parquet"):
        assert (
            pq.ParquetFile(exported / relative).num_row_groups
            == pq.ParquetFile(source / relative).num_row_groups
        )
        assert pq.read_table(exported / relative).equals(
            pq.read_table(source / relative).replace_schema_metadata(None)
        )
    assert episode_table(exported).equals(episode_table(source))
    info = json.loads((exported / "meta/info.json").read_text())
    assert info == json.loads((source / "meta/info.json").read_text())
    for name_ in ("meta/stats.json", "meta/tasks.parquet"):
        assert (exported / name_).read_bytes() == (source / name_).read_bytes()


def test_reader_over_the_round_trip_equals_the_reader_over_the_original(tmp_path: Path) -> None:
    first, _, second = round_trip("multi", tmp_path)
    deltas = {"observation.images.front": [-2 / 15, 0.0], "action": [0.0, 1 / 15, 2 / 15]}
    original = ShardedLeRobotDataset(str(first), delta_timestamps=deltas)
    again = ShardedLeRobotDataset(str(second), delta_timestamps=deltas)
    assert again.num_frames == original.num_frames == 1852
    for index in range(0, original.num_frames, 11):
        ours, theirs = again.item_at(index), original.item_at(index)
        assert ours.keys() == theirs.keys()
        for key, value in theirs.items():
            if isinstance(value, str):
                assert ours[key] == value
            else:
                np.testing.assert_array_equal(ours[key].numpy(), value.numpy(), err_msg=f"{index} {key}")


def test_a_conversion_of_some_episodes_is_renumbered(tmp_path: Path) -> None:
    """LeRobot addresses its episode table by position: episodes 3 and 7 become 0 and 1, rows keep values."""
    shards, exported = tmp_path / "shards", tmp_path / "exported"
    convert(str(DATA / "multi"), str(shards), ConvertConfig(episodes=(3, 7)))
    result = export(str(shards), str(exported))
    assert result.renumbered
    episodes = episode_table(exported)
    assert episodes["episode_index"].to_pylist() == [0, 1]
    lengths = episodes["length"].to_pylist()
    assert episodes["dataset_from_index"].to_pylist() == [0, lengths[0]]
    rows = pq.read_table(exported / "data/chunk-000/file-000.parquet")
    assert rows["index"].to_pylist() == list(range(sum(lengths)))
    assert rows["episode_index"].to_pylist() == [0] * lengths[0] + [1] * lengths[1]
    # action[1] is the original episode index (the fixture's values describe themselves)
    assert {round(a[1]) for a in rows["action"].to_pylist()} == {3, 7}
    assert episodes["videos/observation.images.front/from_timestamp"].to_pylist()[0] == 0.0
    info = json.loads((exported / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"]) == (2, sum(lengths))
    assert info["splits"] == {"train": "0:2"}
    source_stats = episode_table(DATA / "multi").take([3, 7])
    stats = [c for c in source_stats.column_names if c.startswith("stats/")]
    assert len(stats) > 50
    assert episodes.select(stats).equals(source_stats.select(stats))


def test_shards_without_the_episode_table_export_without_stats(tmp_path: Path) -> None:
    """Older conversions have no meta/episodes beside the shards: no stats/* columns then."""
    shards, exported = tmp_path / "shards", tmp_path / "exported"
    convert(str(DATA / "tiny"), str(shards))
    for path in shards.glob("meta/episodes/*/*.parquet"):
        path.unlink()
    export(str(shards), str(exported))
    columns = episode_table(exported).column_names
    assert "videos/observation.images.front/to_timestamp" in columns
    assert not [c for c in columns if c.startswith("stats/")]


def test_refuses_an_existing_dataset_and_a_corrupt_episode(tmp_path: Path) -> None:
    shards, exported = tmp_path / "shards", tmp_path / "exported"
    convert(str(DATA / "tiny"), str(shards))
    export(str(shards), str(exported))
    with pytest.raises(ValueError, match="already holds a LeRobot dataset"):
        export(str(shards), str(exported))
    export(str(shards), str(exported), ExportConfig(overwrite=True))
    manifest = read_manifest(str(shards))
    entry = manifest.episodes[2]
    path = shards / entry.shard
    data = bytearray(path.read_bytes())
    data[entry.offset_bytes + entry.size_bytes - 700] ^= 0xFF
    path.write_bytes(bytes(data))
    assert zlib.crc32(data[entry.offset_bytes : entry.offset_bytes + entry.size_bytes]) != entry.crc32
    with pytest.raises(ShardFormatError, match=r"episode 2 .*crc32"):
        export(str(shards), str(tmp_path / "other"))
    assert not (tmp_path / "other").exists()  # nothing published
    assert not list(tmp_path.glob(".lerobot-wds-export-*"))  # staging removed


def test_cli_export_quiet_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shards, exported = tmp_path / "shards", tmp_path / "exported"
    convert(str(DATA / "tiny"), str(shards))
    assert main(["--quiet", "export", str(shards), str(exported)]) == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")
    assert main(["export", str(shards), str(exported)]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["export", str(shards), str(exported), "--overwrite"]) == 0
    assert "6 episodes, 224 frames" in capsys.readouterr().out


def test_export_from_and_to_s3(tmp_path: Path, s3_server: dict[str, Any], s3_bucket: str) -> None:
    """Shards in a bucket -> LeRobot v3 in a bucket: the same files as a local export, byte for byte."""
    import s3fs

    shards = f"s3://{s3_bucket}/shards"
    convert(str(DATA / "multi"), shards, ConvertConfig(shard_size_mb=0.4, storage_options=s3_server))
    dest = f"s3://{s3_bucket}/lerobot"
    config = ExportConfig(storage_options=s3_server, source_storage_options=s3_server)
    export(shards, dest, config)
    local = tmp_path / "local"
    convert(str(DATA / "multi"), str(tmp_path / "shards"), ConvertConfig(shard_size_mb=0.4))
    export(str(tmp_path / "shards"), str(local))
    fs = s3fs.S3FileSystem(**s3_server)
    remote = {p.removeprefix(f"{s3_bucket}/lerobot/"): p for p in fs.find(f"{s3_bucket}/lerobot")}
    assert sorted(remote) == sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    for relative, path in remote.items():
        assert fs.cat_file(path) == (local / relative).read_bytes(), relative


@pytest.mark.lerobot
@pytest.mark.skipif(not os.environ.get("LEROBOT_VENV"), reason="LEROBOT_VENV (a LeRobot venv) not given")
@pytest.mark.parametrize("name", ["tiny", "multi", "h264", "depth", "images", "g1"])
def test_lerobot_loads_the_export_with_the_golden_items(name: str, tmp_path: Path) -> None:
    """LeRobot 0.6.1's map-style ``LeRobotDataset`` over the export returns every golden item of the
    original (values exact, frames by sha256)."""
    shards, exported = tmp_path / "shards", tmp_path / "exported"
    convert(str(fixture_dir(name)), str(shards), ConvertConfig(shard_size_mb=SHARD_SIZE_MB[name]))
    export(str(shards), str(exported))
    python = Path(os.environ["LEROBOT_VENV"]) / "bin/python"
    golden = fixture_dir(name) / "golden.jsonl.gz"
    command = [python, ROOT / "tests/lerobot_check.py", exported, golden]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.splitlines()[-1])
    assert report["failures"] == []
    assert report["checked"] > 20
    assert report["num_frames"] == read_manifest(str(shards)).num_frames


def test_a_re_encoded_conversion_exports_its_codec_and_frames(tmp_path: Path) -> None:
    """Shards re-encoded to h264 (``--vcodec``): info.json names h264, and a re-conversion of the export
    decodes to the very frames of the re-encoded shards."""
    shards, exported, again = tmp_path / "shards", tmp_path / "exported", tmp_path / "again"
    convert(str(DATA / "tiny"), str(shards), ConvertConfig(vcodec="h264"))
    export(str(shards), str(exported))
    info = json.loads((exported / "meta/info.json").read_text())
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "h264"
    convert(str(exported), str(again))
    deltas = {"observation.images.front": [-1 / 30, 0.0]}
    first = ShardedLeRobotDataset(str(shards), delta_timestamps=deltas)
    second = ShardedLeRobotDataset(str(again), delta_timestamps=deltas)
    for index in range(0, first.num_frames, 5):
        np.testing.assert_array_equal(
            second.item_at(index)["observation.images.front"].numpy(),
            first.item_at(index)["observation.images.front"].numpy(),
        )
