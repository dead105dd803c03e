"""The format spec: manifest round trip, version check, names, and FORMAT.md's example."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lerobot_wds import format as fmt

ROOT = Path(__file__).resolve().parent.parent


def small_manifest() -> fmt.Manifest:
    shards = [
        fmt.ShardEntry(
            path=fmt.shard_path(0), size_bytes=3072, sha256="ab" * 32, episodes=(0, 1), num_frames=5
        ),
        fmt.ShardEntry(
            path=fmt.shard_path(1), size_bytes=2048, sha256="cd" * 32, episodes=(7,), num_frames=4
        ),
    ]
    episodes = [
        fmt.EpisodeEntry(
            episode_index=0,
            num_frames=2,
            dataset_from_index=0,
            shard=shards[0].path,
            offset_bytes=0,
            size_bytes=1024,
            task_indices=(0,),
        ),
        fmt.EpisodeEntry(
            episode_index=1,
            num_frames=3,
            dataset_from_index=2,
            shard=shards[0].path,
            offset_bytes=1024,
            size_bytes=1024,
            task_indices=(1, 0),
        ),
        fmt.EpisodeEntry(
            episode_index=7,
            num_frames=4,
            dataset_from_index=30,
            shard=shards[1].path,
            offset_bytes=0,
            size_bytes=1024,
            task_indices=(2,),
        ),
    ]
    return fmt.Manifest(
        format_version=fmt.FORMAT_VERSION,
        source=fmt.SourceInfo(location="lerobot/pusht", revision="a" * 40, codebase_version="v3.0"),
        fps=10,
        features={"action": {"dtype": "float32", "shape": [2]}},
        camera_keys=["observation.images.top"],
        options={"episodes": None, "shard_size_mb": 256.0},
        shards=shards,
        episodes=episodes,
    )


def test_manifest_round_trip() -> None:
    manifest = small_manifest()
    again = fmt.Manifest.from_json(manifest.to_json(), "test")
    assert again == manifest
    assert again.num_frames == 9
    assert json.loads(manifest.to_json())["totals"] == {"episodes": 3, "frames": 9, "bytes": 5120}


def test_unknown_format_version_is_refused() -> None:
    obj = json.loads(small_manifest().to_json())
    obj["format_version"] = 99
    with pytest.raises(fmt.ShardFormatError, match=r"format_version 99; expected 1"):
        fmt.Manifest.from_json(json.dumps(obj), "s3://b/manifest.json")


def test_malformed_manifest_names_the_field() -> None:
    obj = json.loads(small_manifest().to_json())
    obj["episodes"]["shard_index"][0] = 5
    with pytest.raises(fmt.ShardFormatError, match="episode 0 names shard 5"):
        fmt.Manifest.from_json(json.dumps(obj), "m")
    del obj["fps"]
    with pytest.raises(fmt.ShardFormatError, match="missing field 'fps'"):
        fmt.Manifest.from_json(json.dumps(obj), "m")
    with pytest.raises(fmt.ShardFormatError, match="not valid JSON"):
        fmt.Manifest.from_json(b"{", "m")


def test_episode_fields_round_trip_and_old_manifests_read_without_them() -> None:
    manifest = small_manifest()
    assert "fields" not in json.loads(manifest.to_json())["episodes"]  # none kept: the column is left out
    success = (("success", True), ("operator", "ana"))
    episodes = [manifest.episodes[0], *(replace(e, fields=success) for e in manifest.episodes[1:])]
    episodes[2] = replace(episodes[2], fields=(("success", False),))
    with_fields = replace(manifest, episodes=episodes)
    columns = json.loads(with_fields.to_json())["episodes"]
    assert columns["fields"] == {"operator": [None, "ana", None], "success": [None, True, False]}
    again = fmt.Manifest.from_json(with_fields.to_json(), "test")
    assert [dict(e.fields) for e in again.episodes] == [
        {},
        {"operator": "ana", "success": True},
        {"success": False},
    ]


def test_member_names() -> None:
    assert fmt.episode_key(123) == "ep_000123"
    assert fmt.parse_episode_key("ep_000123") == 123
    assert fmt.split_member_name("ep_000123.observation.images.top.mp4") == (
        "ep_000123",
        "observation.images.top.mp4",
    )
    assert fmt.sample_suffixes(["observation.images.top"]) == [
        "meta.json",
        "observation.images.top.mp4",
        "rows.arrow",
    ]
    with pytest.raises(fmt.ShardFormatError, match="not an episode key"):
        fmt.parse_episode_key("episode_1")
    with pytest.raises(fmt.ShardFormatError, match="no suffix"):
        fmt.split_member_name("ep_000001")


def test_rows_round_trip() -> None:
    table = pa.table({"action": pa.array([[1.0, 2.0]], pa.list_(pa.float32(), 2)), "index": [3]})
    assert fmt.decode_rows(fmt.encode_rows(table), "t").equals(table)
    with pytest.raises(fmt.ShardFormatError, match="not an Arrow IPC file"):
        fmt.decode_rows(b"nope", "t")


def test_format_md_example_parses() -> None:
    text = (ROOT / "FORMAT.md").read_text()
    manifest_json = re.search(r"```json manifest\n(.*?)```", text, re.S)
    meta_json = re.search(r"```json episode-meta\n(.*?)```", text, re.S)
    assert manifest_json is not None
    assert meta_json is not None
    manifest = fmt.Manifest.from_json(manifest_json.group(1), "FORMAT.md")
    assert manifest.episodes[0].shard == manifest.shards[0].path
    meta = fmt.EpisodeMeta.from_json(meta_json.group(1), "FORMAT.md")
    assert list(meta.cameras) == manifest.camera_keys


def _set(path: str, value: object) -> Any:
    def change(obj: dict) -> None:
        *parents, last = path.split(".")
        target: Any = obj
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return change


# A hostile or broken manifest: each case one ShardFormatError naming what is wrong (issue 18).
BAD_MANIFESTS = {
    "fps zero": (
        _set("fps", 0),
        r"fps is 0; expected >= 1",
    ),
    "episode listed twice": (
        _set("episodes.episode_index.1", 0),
        r"episode 0: listed twice",
    ),
    "negative offset": (
        _set("episodes.offset_bytes.0", -5),
        r"episode 0: offset_bytes is -5; expected >= 0",
    ),
    "absurd size": (
        _set("episodes.size_bytes.0", 10**12),
        r"episode 0: bytes 0\.\.1000000000000; shard .* has 3072",
    ),
    "offset as a string": (
        _set("episodes.offset_bytes.1", "1024"),
        r"offset_bytes is str '1024'; expected an int",
    ),
    "zero frames": (
        _set("episodes.num_frames.2", 0),
        r"episode 7: num_frames is 0; expected >= 1",
    ),
    "task as float": (
        _set("episodes.task_indices.0", [0.5]),
        r"episode 0: task_indices is float",
    ),
    "fields of another length": (
        _set("episodes.fields", {"success": [True]}),
        r"episodes.fields\['success'\] has 1 values; expected 3",
    ),
    "field not a scalar": (
        _set("episodes.fields", {"success": [True, [1], None]}),
        r"episodes.fields\['success'\]\[1\] is list; expected a JSON scalar",
    ),
    "crc out of range": (
        _set("episodes.crc32", [-1, 0, 0]),
        r"episode 0: crc32 -1; expected an int in \[0, 2\*\*32\)",
    ),
    "shard path escapes": (
        _set("shards.0.path", "../../etc/passwd"),
        r"shard path '\.\./\.\./etc/passwd'; expected a relative",
    ),
    "absolute shard path": (
        _set("shards.0.path", "/etc/passwd"),
        r"shard path '/etc/passwd'",
    ),
    "remote shard path": (
        _set("shards.0.path", "s3://other/x.tar"),
        r"shard path 's3://other/x\.tar'",
    ),
    "negative shard size": (
        _set("shards.1.size_bytes", -1),
        r"size_bytes is -1; expected >= 0",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_hostile_manifests_are_refused_clearly(case: str) -> None:
    change, message = BAD_MANIFESTS[case]
    obj = json.loads(small_manifest().to_json())
    change(obj)
    with pytest.raises(fmt.ShardFormatError, match=message):
        fmt.Manifest.from_json(json.dumps(obj), "m")
