"""Hub dataset repos: URL parsing, commit plan, dataset card (offline); the round trip (network)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import uuid
from pathlib import Path

import pytest
import yaml
from helpers import DATA

from lerobot_wds import ConvertConfig, ShardedLeRobotDataset, convert
from lerobot_wds.converter import hub
from lerobot_wds.converter.card import dataset_card
from lerobot_wds.converter.hub import HubTarget, RemoteFile, hub_target, plan_commits
from lerobot_wds.format import read_manifest


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("hf://datasets/me/pusht-wds", HubTarget("me/pusht-wds", None, "")),
        ("hf://datasets/me/pusht-wds/", HubTarget("me/pusht-wds", None, "")),
        ("hf://datasets/me/pusht-wds@main/sub/dir", HubTarget("me/pusht-wds", "main", "sub/dir")),
        ("hf://buckets/me/bucket/prefix", None),  # no commits: the generic fsspec path
        ("s3://bucket/prefix", None),
        ("/local/path", None),
    ],
)
def test_hub_target(url: str, target: HubTarget | None) -> None:
    assert hub_target(url) == target


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hub") / "multi"
    convert(str(DATA / "multi"), str(root), ConvertConfig(shard_size_mb=0.3))
    return root


def test_commits_batch_the_shards_and_end_with_the_manifest(
    local: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub, "SHARDS_PER_COMMIT", 2)
    manifest = read_manifest(str(local))
    target = HubTarget("me/multi-wds", None, "v1")
    commits = plan_commits(local, manifest, target, remote={})
    shards = [f"v1/{s.path}" for s in manifest.shards]
    assert len(shards) >= 4
    assert [path for commit in commits[:-1] for path, _ in commit] == shards  # every shard once, in order
    assert all(len(commit) <= 2 for commit in commits[:-1])
    assert len(commits) == (len(shards) + 1) // 2 + 1
    final = dict(commits[-1])
    assert list(final)[-1] == "v1/manifest.json"  # the manifest last, in the last commit
    assert {"v1/meta/info.json", "v1/meta/tasks.parquet", "v1/README.md"} <= set(final)
    assert final["v1/meta/info.json"] == local / "meta/info.json"
    card = final["v1/README.md"]
    assert isinstance(card, bytes)
    assert "v1/shards/*.tar" in card.decode()


def test_shards_already_on_the_hub_are_skipped_by_size_and_checksum(local: Path) -> None:
    manifest = read_manifest(str(local))
    target = HubTarget("me/multi-wds", None, "")
    first, second, third = manifest.shards[:3]
    remote = {
        first.path: RemoteFile(first.size_bytes, first.sha256),  # complete: skipped
        second.path: RemoteFile(second.size_bytes, "0" * 64),  # same size, other bytes: uploaded again
        third.path: RemoteFile(third.size_bytes - 1, third.sha256),  # truncated: uploaded again
    }
    uploaded = [path for commit in plan_commits(local, manifest, target, remote)[:-1] for path, _ in commit]
    assert uploaded == [s.path for s in manifest.shards[1:]]


def test_dataset_card_declares_the_shards(local: Path) -> None:
    card = dataset_card(read_manifest(str(local)))
    front_matter = yaml.safe_load(card.split("---")[1])
    assert front_matter["configs"][0]["data_files"][0]["path"] == "shards/*.tar"
    assert "LeRobot" in front_matter["tags"]
    assert "24\nepisodes" in card or "24 episodes" in card.replace("\n", " ")
    assert "`observation.images.wrist`" in card


@pytest.mark.network
@pytest.mark.skipif(not os.environ.get("HF_TOKEN"), reason="needs HF_TOKEN with write access")
def test_round_trip_through_a_hub_dataset_repo(tmp_path: Path, local: Path) -> None:
    from huggingface_hub import HfApi

    api = HfApi()
    repo_id = f"{api.whoami()['name']}/lerobot-wds-test-{uuid.uuid4().hex[:8]}"
    url = f"hf://datasets/{repo_id}"
    try:
        convert(str(DATA / "multi"), url, ConvertConfig(shard_size_mb=0.3, staging_dir=str(tmp_path / "s")))
        again = convert(
            str(DATA / "multi"), url, ConvertConfig(shard_size_mb=0.3, staging_dir=str(tmp_path / "s"))
        )
        assert again.manifest == read_manifest(str(local))
        remote = ShardedLeRobotDataset(url, seed=3)
        reference = ShardedLeRobotDataset(str(local), seed=3)
        assert [int(i["index"]) for i in remote] == [int(i["index"]) for i in reference]
    finally:
        api.delete_repo(repo_id, repo_type="dataset", missing_ok=True)


@pytest.mark.network
@pytest.mark.skipif(not os.environ.get("HF_TOKEN"), reason="needs HF_TOKEN with write access")
def test_an_update_of_a_hub_repo_uploads_only_the_new_shards(tmp_path: Path, fixture_copy) -> None:
    from huggingface_hub import HfApi
    from test_update import CONFIG, rewind_to_20_episodes

    api = HfApi()
    repo_id = f"{api.whoami()['name']}/lerobot-wds-test-{uuid.uuid4().hex[:8]}"
    url = f"hf://datasets/{repo_id}"
    source = fixture_copy("multi")
    rewind_to_20_episodes(source)
    config = dataclasses.replace(CONFIG, staging_dir=str(tmp_path / "s"))
    try:
        first = convert(str(source), url, config).manifest
        shutil.copytree(DATA / "multi", source, dirs_exist_ok=True)
        before = {c.commit_id for c in api.list_repo_commits(repo_id, repo_type="dataset")}
        result = convert(str(source), url, config)
        assert (result.manifest.generation, result.shards_skipped) == (1, len(first.shards))
        new = [c for c in api.list_repo_commits(repo_id, repo_type="dataset") if c.commit_id not in before]
        assert len(new) == 2  # one commit of new shards, then meta, card and manifest
        assert ShardedLeRobotDataset(url).num_frames == 1852
        assert convert(str(source), url, config).manifest == result.manifest  # nothing new: no commit
        assert len(api.list_repo_commits(repo_id, repo_type="dataset")) == len(before) + 2
    finally:
        api.delete_repo(repo_id, repo_type="dataset", missing_ok=True)
