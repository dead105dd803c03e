"""Incremental updates: a source that gained episodes gets new shards only, and a new manifest generation.

The growth is real: LeRobot's writer put ``multi``'s episodes 20-23 in files of their own (episode
metadata ``file-002``, data ``chunk-002``, videos ``chunk-001/file-000``), so ``multi`` without those files
(and with ``info.json``'s totals of 20 episodes) is the dataset as its writer had it after episode 19.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers import DATA, read_samples

from lerobot_wds import ConvertConfig, ShardedLeRobotDataset, convert, inspect_dataset, read_manifest
from lerobot_wds import format as fmt

CONFIG = ConvertConfig(shard_size_mb=0.4)
LATER = [  # the files LeRobot wrote for episodes 20-23 only
    "meta/episodes/chunk-000/file-002.parquet",
    "data/chunk-002",
    "videos/observation.images.front/chunk-001",
    "videos/observation.images.wrist/chunk-001",
]


def rewind_to_20_episodes(source: Path) -> None:
    """``source`` (a copy of multi) as its writer had it after 20 episodes."""
    for relative in LATER:
        path = source / relative
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    lengths = pa.concat_tables(
        pq.read_table(f, columns=["length"]) for f in sorted((source / "meta/episodes").glob("*/*.parquet"))
    )["length"].to_pylist()
    info = json.loads((source / "meta/info.json").read_text())
    info |= {"total_episodes": 20, "total_frames": sum(lengths), "splits": {"train": "0:20"}}
    (source / "meta/info.json").write_text(json.dumps(info, indent=4))


def sha256s(root: Path, manifest: fmt.Manifest) -> dict[str, str]:
    return {s.path: hashlib.sha256((root / s.path).read_bytes()).hexdigest() for s in manifest.shards}


def members(root: Path) -> dict[int, dict[str, bytes]]:
    """Every sample's members (webdataset's own ``__local_path__`` left out: it names the shard)."""
    return {k: {n: v for n, v in s.items() if not n.startswith("__")} for k, s in read_samples(root).items()}


def item_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a
    )


@pytest.fixture(scope="module")
def one_shot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole of multi converted at once, from the same location as the update's source."""
    root = tmp_path_factory.mktemp("update")
    shutil.copytree(DATA / "multi", root / "src")
    convert(str(root / "src"), str(root / "one-shot"), CONFIG)
    return root


def test_an_update_appends_shards_and_reads_like_a_one_shot_conversion(one_shot: Path) -> None:
    source, dest = one_shot / "src-grows", one_shot / "updated"
    shutil.copytree(DATA / "multi", source)
    rewind_to_20_episodes(source)
    before = convert(str(source), str(dest), CONFIG).manifest
    assert (before.num_episodes, before.generation) == (20, 0)
    old_hashes = sha256s(dest, before)
    old_reader = ShardedLeRobotDataset(str(dest))  # holds the old manifest through the update
    # The writer records episodes 20-23: their files appear, meta/ is rewritten.
    shutil.copytree(DATA / "multi", source, dirs_exist_ok=True)
    result = convert(str(source), str(dest), CONFIG)
    after = result.manifest
    assert after.generation == 1
    assert result.shards_skipped == len(before.shards)
    assert after.shards[: len(before.shards)] == before.shards
    assert after.episodes[:20] == before.episodes
    assert {s.path for s in after.shards[len(before.shards) :]}.isdisjoint(old_hashes)
    assert all(set(s.episodes) <= set(range(20, 24)) for s in after.shards[len(before.shards) :])
    assert sha256s(dest, before) == old_hashes  # old shards untouched
    assert read_manifest(str(dest)) == after
    assert not (dest / "_lerobot_wds_work").exists()
    # Reads like the one-shot conversion of the whole source: same samples, entries, meta, items.
    whole = read_manifest(str(one_shot / "one-shot"))
    assert members(dest) == members(one_shot / "one-shot")

    def described(manifest: fmt.Manifest) -> list[tuple]:
        return [(e.episode_index, e.num_frames, e.dataset_from_index, e.task_indices, e.size_bytes, e.crc32)
                for e in manifest.episodes]  # fmt: skip

    assert described(after) == described(whole)
    assert (after.options, after.fps, after.features, after.camera_keys) == (
        whole.options, whole.fps, whole.features, whole.camera_keys,
    )  # fmt: skip
    for name in fmt.META_FILES:
        assert (dest / name).read_bytes() == (one_shot / "one-shot" / name).read_bytes()
    updated, reference = ShardedLeRobotDataset(str(dest)), ShardedLeRobotDataset(str(one_shot / "one-shot"))
    assert updated.num_frames == reference.num_frames == 1852
    for index in (0, 700, 1500, 1700, 1851):  # old episodes and new ones
        assert item_equal(updated.item_at(index), reference.item_at(index)), index
    # A reader that opened the dataset before the update still reads its episodes.
    assert old_reader.num_frames == before.num_frames > 1000
    assert item_equal(old_reader.item_at(1000), reference.item_at(1000))
    # Nothing new: nothing written, same manifest.
    again = convert(str(source), str(dest), CONFIG)
    assert again.manifest == after
    assert again.shards_skipped == len(after.shards)
    assert inspect_dataset(str(dest))["generation"] == 1


def test_a_grown_selection_is_an_update_and_a_shrunk_one_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    convert(str(DATA / "multi"), str(dest), ConvertConfig(shard_size_mb=0.4, episodes=tuple(range(12))))
    grown = convert(
        str(DATA / "multi"), str(dest), ConvertConfig(shard_size_mb=0.4, episodes=tuple(range(16)))
    )
    assert grown.manifest.generation == 1
    assert [e.episode_index for e in grown.manifest.episodes] == list(range(16))
    assert grown.manifest.options["episodes"] == list(range(16))
    other = ConvertConfig(shard_size_mb=0.4, episodes=(*range(6), *range(12, 20)))
    with pytest.raises(
        ValueError,
        match=r"6 converted episode\(s\) changed or left the selection: episode 6: no longer selected",
    ):
        convert(str(DATA / "multi"), str(dest), other)
    assert read_manifest(str(dest)) == grown.manifest
    again = ConvertConfig(shard_size_mb=0.4, episodes=other.episodes, overwrite=True)
    replaced = convert(str(DATA / "multi"), str(dest), again)
    assert replaced.manifest.generation == 0
    assert [e.episode_index for e in replaced.manifest.episodes] == list(other.episodes or ())


def test_changed_episodes_are_refused_with_the_list(tmp_path: Path, fixture_copy) -> None:
    source = fixture_copy("multi")
    dest = tmp_path / "d"
    rewind_to_20_episodes(source)
    convert(str(source), str(dest), CONFIG)
    shutil.copytree(DATA / "multi", source, dirs_exist_ok=True)
    # Episode 2 now claims another task (what a rewritten episode would look like to the metadata).
    episodes = source / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(episodes)
    tasks = table["tasks"].to_pylist()
    tasks[2] = ["stack the green cup on the blue cup"]
    column = table.schema.get_field_index("tasks")
    pq.write_table(
        table.set_column(column, "tasks", pa.array(tasks, table.schema.field("tasks").type)), episodes
    )
    expected = (
        r"1 converted episode\(s\) changed or left the selection: episode 2: .* \(98, 149, \(2,\)\) -> "
    )
    expected += r"\(98, 149, \(3,\)\)"
    with pytest.raises(ValueError, match=expected):
        convert(str(source), str(dest), CONFIG)
    assert read_manifest(str(dest)).num_episodes == 20
    replaced = convert(str(source), str(dest), ConvertConfig(shard_size_mb=0.4, overwrite=True))
    assert replaced.manifest.num_episodes == 24
