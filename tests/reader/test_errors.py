"""Bad input to the reader: one clear error naming the URL, shard, episode or key."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from lerobot_wds import ShardedLeRobotDataset, ShardFormatError, read_manifest


@pytest.fixture
def copy_of(converted: dict[str, str], tmp_path: Path):
    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(converted[name], target)
        return target

    return copy


def test_no_manifest(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"no manifest\.json; expected a finished lerobot-wds conversion"
    ):
        ShardedLeRobotDataset(str(tmp_path))


def test_meta_files_stats_optional_tasks_required(copy_of) -> None:
    root = copy_of("tiny")
    (root / "meta/stats.json").unlink()
    assert ShardedLeRobotDataset(str(root)).meta.stats == {}
    (root / "meta/tasks.parquet").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"meta/tasks\.parquet: missing; expected LeRobot's meta files"
    ):
        ShardedLeRobotDataset(str(root))


def test_unknown_format_version(copy_of) -> None:
    root = copy_of("tiny")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["format_version"] = 2
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardFormatError, match=r"manifest\.json: format_version 2; expected 1"):
        ShardedLeRobotDataset(str(root))


def drop_checksums(root: Path) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    del manifest["episodes"]["crc32"]
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_shard_missing_a_member(copy_of) -> None:
    root = copy_of("tiny")
    shard = root / read_manifest(str(root)).shards[0].path
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member, data in members:
            if member.name == "ep_000002.observation.images.front.mp4":
                member.name = "ep_000002.observation.images.xxxxx.mp4"  # same length: offsets unchanged
            tar.addfile(member, io.BytesIO(data))
    shard.write_bytes(out.getvalue())
    with pytest.raises(ShardFormatError, match=r"episode 2 \(ep_000002\): bytes .* have crc32"):
        next(iter(ShardedLeRobotDataset(str(root), episodes=[2])))
    drop_checksums(root)  # as a manifest written before checksums, or rewritten with the shard
    dataset = ShardedLeRobotDataset(str(root), episodes=[2])
    with pytest.raises(
        ShardFormatError, match=r"shard-000000\.tar: episode 2 \(ep_000002\): members .*xxxxx"
    ):
        next(iter(dataset))


def test_truncated_shard(copy_of) -> None:
    root = copy_of("multi")
    manifest = read_manifest(str(root))
    last = manifest.episodes[-1]
    shard = root / last.shard
    shard.write_bytes(shard.read_bytes()[: last.offset_bytes + 700])
    dataset = ShardedLeRobotDataset(str(root), episodes=[last.episode_index])
    with pytest.raises(ShardFormatError, match=rf"episode {last.episode_index} .*truncated shard"):
        next(iter(dataset))


def test_delta_timestamps_key_that_is_not_a_feature(converted: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"keys \['actions'\] are not features"):
        ShardedLeRobotDataset(converted["tiny"], delta_timestamps={"actions": [0.0]})


def test_delta_timestamps_off_the_frame_grid(converted: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"\{'action': \[0\.01\]\} are not multiples of 1/fps = 1/30"):
        ShardedLeRobotDataset(converted["tiny"], delta_timestamps={"action": [0.0, 0.01]})


def test_long_windows_beyond_both_edges(converted: dict[str, str]) -> None:
    fps = 30
    deltas = [i / fps for i in range(-150, 151, 10)]
    dataset = ShardedLeRobotDataset(converted["tiny"], delta_timestamps={"action": deltas})
    item = dataset.item_at(0)
    assert item["action"].shape == (31, 6)
    assert item["action_is_pad"].sum() > 15


def flip_byte_in_rows(root: Path, episode_position: int) -> tuple[int, int]:
    """Flip one byte inside an episode's rows.arrow member, in place; (episode_index, byte offset)."""
    manifest = read_manifest(str(root))
    entry = manifest.episodes[episode_position]
    shard = root / entry.shard
    with tarfile.open(shard) as tar:
        member = next(
            m for m in tar if m.name.endswith(".rows.arrow") and f"{entry.episode_index:06d}" in m.name
        )
    position = member.offset_data + member.size // 2
    data = bytearray(shard.read_bytes())
    data[position] ^= 0x01
    shard.write_bytes(bytes(data))
    return entry.episode_index, position


def test_a_flipped_byte_in_an_episode_is_one_clear_error(copy_of) -> None:
    root = copy_of("multi")
    episode_index, _ = flip_byte_in_rows(root, 5)
    dataset = ShardedLeRobotDataset(str(root), episodes=[episode_index])
    with pytest.raises(
        ShardFormatError, match=rf"episode {episode_index} .* have crc32 [0-9a-f]{{8}}; manifest says"
    ):
        list(dataset)


def test_manifests_without_checksums_still_read(converted: dict[str, str], copy_of) -> None:
    root = copy_of("tiny")
    assert all(e.crc32 is not None for e in read_manifest(str(root)).episodes)
    drop_checksums(root)  # as written before checksums existed
    old = ShardedLeRobotDataset(str(root), seed=3)
    assert all(e.crc32 is None for e in old.entries)
    expected = [int(item["index"]) for item in ShardedLeRobotDataset(converted["tiny"], seed=3)]
    assert [int(item["index"]) for item in old] == expected
