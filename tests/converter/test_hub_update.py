"""Updates of ``hf://datasets`` destinations, offline: everything short of the upload itself.

A real S3 bucket (SeaweedFS) stands for the Hub repo: the repo's manifest is read from it through fsspec as
from ``hf://`` (``stage_update``), the update converts into staging, ``plan_commits`` decides what to upload
against the bucket's listing (sizes and sha256, as the Hub reports them), and the commits are applied to the
bucket file by file. The growth is test_update.py's: ``multi`` as its writer had it after 20 episodes,
then all 24.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import DATA, read_samples
from test_update import CONFIG, rewind_to_20_episodes

from lerobot_wds import convert, read_manifest, verify
from lerobot_wds import format as fmt
from lerobot_wds.converter.hub import HubTarget, RemoteFile, plan_commits, stage_update
from lerobot_wds.converter.source import open_source
from lerobot_wds.converter.update import check_same

TARGET = HubTarget("me/multi-wds", None, "")


def remote_shards(fs: Any, repo: str) -> dict[str, RemoteFile]:
    """What ``hub._remote_shards`` gets from the Hub: path in repo -> size and sha256, for shards/."""
    found = fs.find(f"{repo}/{fmt.SHARD_DIR}", detail=True)
    return {
        name.removeprefix(f"{repo}/"): RemoteFile(int(info["size"]), hub_sha256(fs, name))
        for name, info in found.items()
    }


def hub_sha256(fs: Any, path: str) -> str:
    return hashlib.sha256(fs.cat_file(path)).hexdigest()


def apply(fs: Any, repo: str, commits: list[list[tuple[str, Path | bytes]]]) -> list[str]:
    """Write each commit's files into the bucket, in order; returns the paths written."""
    written = []
    for commit in commits:
        for path_in_repo, content in commit:
            data = content if isinstance(content, bytes) else content.read_bytes()
            fs.pipe_file(f"{repo}/{path_in_repo}", data)
            written.append(path_in_repo)
    return written


def members(root: Path) -> dict[int, dict[str, bytes]]:
    return {k: {n: v for n, v in s.items() if not n.startswith("__")} for k, s in read_samples(root).items()}


def test_an_update_uploads_only_the_new_shards_then_meta_and_the_manifest(
    s3_server: dict, s3_bucket: str, fixture_copy, tmp_path: Path
) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server)
    repo, url = f"{s3_bucket}/repo", f"s3://{s3_bucket}/repo"
    source, staging = fixture_copy("multi"), tmp_path / "staging"
    rewind_to_20_episodes(source)
    # First publish: the repo holds nothing, so staging converts everything.
    assert stage_update(url, staging, s3_server) is None
    first = convert(str(source), str(staging), CONFIG).manifest
    written = apply(fs, repo, plan_commits(staging, first, TARGET, remote_shards(fs, repo)))
    assert written[-1] == fmt.MANIFEST_NAME
    old = remote_shards(fs, repo)
    assert sorted(old) == [s.path for s in first.shards]
    shutil.rmtree(staging)  # as publishing does: the next run has no local state
    # The source gains episodes 20-23; converting again reads the repo's manifest and updates it.
    shutil.copytree(DATA / "multi", source, dirs_exist_ok=True)
    assert stage_update(url, staging, s3_server) == first
    result = convert(str(source), str(staging), CONFIG)
    manifest = result.manifest
    assert (manifest.generation, manifest.num_episodes) == (1, 24)
    assert result.shards_skipped == len(first.shards)
    new = [s.path for s in manifest.shards[len(first.shards) :]]
    assert sorted(p.relative_to(staging).as_posix() for p in (staging / fmt.SHARD_DIR).iterdir()) == new
    commits = plan_commits(staging, manifest, TARGET, remote_shards(fs, repo))
    assert [path for commit in commits[:-1] for path, _ in commit] == new  # old shards not re-uploaded
    final = [path for path, _ in commits[-1]]
    assert final[-1] == fmt.MANIFEST_NAME
    assert {"meta/info.json", "meta/tasks.parquet", "meta/stats.json", "README.md"} <= set(final)
    apply(fs, repo, commits)
    assert {k: v for k, v in remote_shards(fs, repo).items() if k in old} == old  # old shards untouched
    # The repo now reads like a one-shot conversion of the whole source.
    repo_copy, one_shot = tmp_path / "repo-copy", tmp_path / "one-shot"
    fs.get(repo, str(repo_copy), recursive=True)
    convert(str(DATA / "multi"), str(one_shot), CONFIG)
    assert read_manifest(str(repo_copy)) == manifest
    assert verify(str(repo_copy)).ok
    assert members(repo_copy) == members(one_shot)
    for name in fmt.META_FILES:
        assert (repo_copy / name).read_bytes() == (one_shot / name).read_bytes()
    # Nothing new: the staged manifest is what convert returns (convert() publishes nothing then).
    shutil.rmtree(staging)
    assert stage_update(url, staging, s3_server) == manifest
    assert convert(str(source), str(staging), CONFIG).manifest == manifest


def test_staging_keeps_a_newer_manifest_and_a_lost_shard_is_named(
    s3_server: dict, s3_bucket: str, tmp_path: Path
) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server)
    repo, url = f"{s3_bucket}/repo", f"s3://{s3_bucket}/repo"
    staging = tmp_path / "staging"
    manifest = convert(str(DATA / "multi"), str(staging), CONFIG).manifest
    fs.pipe_file(f"{repo}/{fmt.MANIFEST_NAME}", (staging / fmt.MANIFEST_NAME).read_bytes())
    # An interrupted publish left staging with a manifest as new as the repo's: kept, publishing resumes.
    assert stage_update(url, staging, s3_server) is None
    # The repo lost a shard that only it had (staging holds the update's new shards only).
    lost = manifest.shards[1]
    (staging / lost.path).unlink()
    remote = {s.path: RemoteFile(s.size_bytes, s.sha256) for s in manifest.shards if s != lost}
    with pytest.raises(ValueError, match=rf"shard '{lost.path}' .* neither in the repo \(got None\) nor in"):
        plan_commits(staging, manifest, TARGET, remote)
    # A shard the Hub lists without a checksum, at the manifest's size, is taken as there.
    remote[lost.path] = RemoteFile(lost.size_bytes, None)
    assert [p for c in plan_commits(staging, manifest, TARGET, remote)[:-1] for p, _ in c] == []


def test_a_hub_source_may_move_to_a_new_revision_in_an_update(tmp_path: Path) -> None:
    """A Hub repo that gained episodes has a new commit: same location, another revision is an update
    (update_episodes then checks the converted episodes are unchanged); another location is refused."""
    manifest = convert(str(DATA / "tiny"), str(tmp_path / "d"), CONFIG).manifest
    lerobot = open_source(str(DATA / "tiny"))
    options = CONFIG.shaping_options()
    moved = dataclasses.replace(manifest.source, revision="0" * 40)
    check_same("d", manifest, lerobot, moved, options)
    elsewhere = dataclasses.replace(manifest.source, location="someone/else")
    with pytest.raises(ValueError, match=r"d: holds a conversion of .*; got someone/else@"):
        check_same("d", manifest, lerobot, elsewhere, options)
