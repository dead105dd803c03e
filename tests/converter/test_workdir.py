"""The work folder's schema (plan.json, index sidecars): round trips, versions, malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import DATA

from lerobot_wds import ConvertConfig, convert
from lerobot_wds import format as fmt
from lerobot_wds.converter.plan import ShardPlan
from lerobot_wds.converter.workdir import WORK_VERSION, WorkPlan, WrittenShard, index_url, plan_url


def small_plan() -> WorkPlan:
    return WorkPlan(
        format_version=fmt.FORMAT_VERSION,
        source=fmt.SourceInfo(location="lerobot/pusht", revision="a" * 40, codebase_version="v3.0"),
        options={"episodes": None, "shard_size_mb": 0.4, "vcodec": "copy"},
        shards=(
            ShardPlan(shard_index=0, path=fmt.shard_path(0), episodes=(0, 1)),
            ShardPlan(shard_index=1, path=fmt.shard_path(1), episodes=(2,)),
        ),
        fps=30,
        features={"action": {"dtype": "float32", "shape": [2], "names": None}},
        camera_keys=["observation.images.top"],
        generation=2,
    )


def small_index() -> WrittenShard:
    path = fmt.shard_path(3)
    episodes = [
        fmt.EpisodeEntry(
            episode_index=i,
            num_frames=10 + i,
            dataset_from_index=100 + 10 * i,
            shard=path,
            offset_bytes=2048 * i,
            size_bytes=2048,
            task_indices=(i % 2, 1),
            crc32=12345 + i,
        )
        for i in (7, 8)
    ]
    shard = fmt.ShardEntry(path=path, size_bytes=5120, sha256="ef" * 32, episodes=(7, 8), num_frames=35)
    return WrittenShard(shard=shard, episodes=episodes, psnr_db={"observation.images.top": [41.5, 100.0]})


def test_plan_round_trip() -> None:
    plan = small_plan()
    assert WorkPlan.from_json(plan.to_json(), "plan.json") == plan
    assert json.loads(plan.to_json())["work_version"] == WORK_VERSION


def test_index_round_trip() -> None:
    written = small_index()
    assert WrittenShard.from_json(written.to_json(), "index.json") == written
    stream_copy = WrittenShard(shard=written.shard, episodes=written.episodes, psnr_db={})
    assert WrittenShard.from_json(stream_copy.to_json(), "index.json") == stream_copy


def test_layout() -> None:
    assert plan_url("s3://b/d") == "s3://b/d/_lerobot_wds_work/plan.json"
    assert index_url("/data/d", 12) == "/data/d/_lerobot_wds_work/index/shard-000012.json"


@pytest.mark.parametrize("version", [None, 0, 1, WORK_VERSION + 1, "2"])
def test_other_work_version_is_refused(version: object) -> None:
    for data, parse in [
        (small_plan().to_json(), WorkPlan.from_json),
        (small_index().to_json(), WrittenShard.from_json),
    ]:
        obj = json.loads(data)
        if version is None:
            del obj["work_version"]
            expected = "missing field 'work_version'"
        elif isinstance(version, str):
            obj["work_version"] = version
            expected = "field 'work_version' is str; expected int"
        else:
            obj["work_version"] = version
            expected = rf"work_version {version}; expected {WORK_VERSION} .*--overwrite"
        with pytest.raises(fmt.ShardFormatError, match=rf"^d/_lerobot_wds_work/x\.json: {expected}"):
            parse(json.dumps(obj), "d/_lerobot_wds_work/x.json")


def test_plan_of_another_format_version_is_refused() -> None:
    obj = json.loads(small_plan().to_json())
    obj["format_version"] = fmt.FORMAT_VERSION + 1
    with pytest.raises(fmt.ShardFormatError, match=rf"plan\.json: format_version {fmt.FORMAT_VERSION + 1}; "):
        WorkPlan.from_json(json.dumps(obj), "plan.json")


def test_malformed_plan_names_the_file_and_field() -> None:
    with pytest.raises(fmt.ShardFormatError, match=r"^plan\.json: not valid JSON"):
        WorkPlan.from_json(b'{"work_version": 1', "plan.json")
    with pytest.raises(fmt.ShardFormatError, match=r"^plan\.json: expected a JSON object; got list"):
        WorkPlan.from_json(b"[1]", "plan.json")
    obj = json.loads(small_plan().to_json())
    obj["shards"][1]["episodes"] = "2"
    with pytest.raises(fmt.ShardFormatError, match=r"^plan\.json: shards\[1\]: field 'episodes' is str"):
        WorkPlan.from_json(json.dumps(obj), "plan.json")
    del obj["source"]["location"]
    with pytest.raises(fmt.ShardFormatError, match=r"^plan\.json: source: missing field 'location'"):
        WorkPlan.from_json(json.dumps(obj), "plan.json")


def test_malformed_index_names_the_file_and_field() -> None:
    obj = json.loads(small_index().to_json())
    obj["episodes"][1]["offset_bytes"] = 1.5
    with pytest.raises(
        fmt.ShardFormatError, match=r"^i\.json: episodes\[1\]: field 'offset_bytes' is float; expected int"
    ):
        WrittenShard.from_json(json.dumps(obj), "i.json")
    obj = json.loads(small_index().to_json())
    del obj["shard"]["sha256"]
    with pytest.raises(fmt.ShardFormatError, match=r"^i\.json: shard: missing field 'sha256'"):
        WrittenShard.from_json(json.dumps(obj), "i.json")
    obj = json.loads(small_index().to_json())
    obj["psnr_db"] = {"observation.images.top": "high"}
    with pytest.raises(
        fmt.ShardFormatError, match=r"^i\.json: psnr_db\['observation.images.top'\] is 'high'"
    ):
        WrittenShard.from_json(json.dumps(obj), "i.json")


def test_convert_refuses_a_work_folder_of_another_version(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    plan = dest / "_lerobot_wds_work" / "plan.json"
    plan.parent.mkdir(parents=True)
    plan.write_text(json.dumps({"work_version": WORK_VERSION + 1}))
    expected = rf"plan\.json: work_version {WORK_VERSION + 1}; expected {WORK_VERSION} .*--overwrite"
    with pytest.raises(fmt.ShardFormatError, match=expected):
        convert(str(DATA / "tiny"), str(dest), ConvertConfig(episodes=(0,)))
    result = convert(str(DATA / "tiny"), str(dest), ConvertConfig(episodes=(0,), overwrite=True))
    assert result.manifest.num_episodes == 1
    assert not plan.parent.exists()
