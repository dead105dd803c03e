"""``hf://datasets`` destinations, offline: shards uploaded while converting, staging bounded, resume.

A real S3 bucket (SeaweedFS) stands for the Hub repo, as in test_hub_update.py: :class:`BucketHub` answers
the ``HfApi`` calls publishing makes (pre-upload of LFS objects, commits, the repo's tree with sizes and
sha256) on the bucket, so the whole of ``convert(..., "hf://datasets/...")`` runs short of the network.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from helpers import DATA
from hubstandin import BucketHub, StagedShards

from lerobot_wds import ConvertConfig, convert, read_manifest
from lerobot_wds import format as fmt
from lerobot_wds.converter import hub
from lerobot_wds.converter.workdir import WORK_DIR

convert_module = importlib.import_module("lerobot_wds.converter.convert")  # the package exports convert()
URL = "hf://datasets/me/multi-wds"
SHARD_SIZE_MB = 0.1  # multi in 21 shards


@pytest.fixture
def bucket_hub(s3_server: dict, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    """The stand-in wired into convert(): the repo's API and its manifest read from the bucket."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    root = f"{s3_bucket}/repo"
    real_stage_update = hub.stage_update

    def stage_update(url: str, staging: Path, options: Any) -> Any:
        return real_stage_update(f"s3://{root}", staging, s3_server)

    monkeypatch.setattr(convert_module, "stage_update", stage_update)
    monkeypatch.setattr(hub, "SHARDS_PER_COMMIT", 3)
    return fs, root


@pytest.fixture(scope="module")
def local_multi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("hub-staging") / "local"
    convert(str(DATA / "multi"), str(dest), ConvertConfig(shard_size_mb=SHARD_SIZE_MB))
    return dest


def assert_repo_is(fs: Any, root: str, local: Path, tmp_path: Path) -> None:
    copy = tmp_path / "repo-copy"
    fs.get(root, str(copy), recursive=True)
    manifest = read_manifest(str(local))
    assert read_manifest(str(copy)) == manifest
    for shard in manifest.shards:
        assert (copy / shard.path).read_bytes() == (local / shard.path).read_bytes(), shard.path


def test_shards_are_uploaded_as_finished_and_staging_stays_bounded(
    bucket_hub: tuple[Any, str], local_multi: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs, root = bucket_hub
    api = BucketHub(fs, root)
    monkeypatch.setattr(convert_module, "hf_api", lambda options: api)
    staging = tmp_path / "staging"
    config = ConvertConfig(shard_size_mb=SHARD_SIZE_MB, staging_dir=str(staging), hub_staged_shards=2)
    with StagedShards(staging) as staged:
        result = convert(str(DATA / "multi"), URL, config)
    shards = [s.path for s in result.manifest.shards]
    assert len(shards) == 21
    # 2 finished shards waiting, one being written (1 worker); the whole dataset would be 21
    assert 1 <= staged.peak_files <= 3
    assert staged.peak_bytes <= 3 * max(s.size_bytes for s in result.manifest.shards)
    assert not staging.exists()
    assert sorted(api.preuploaded) == shards  # each shard once
    *batches, last = api.commits
    assert [p for batch in batches for p in batch] == shards  # in batches of 3, shards only
    assert all(len(batch) <= 3 for batch in batches)
    assert last[-1] == fmt.MANIFEST_NAME
    assert not any(p.startswith(fmt.SHARD_DIR) for p in last)
    assert_repo_is(fs, root, local_multi, tmp_path)


def test_a_crash_resumes_keeping_the_committed_shards(
    bucket_hub: tuple[Any, str], local_multi: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs, root = bucket_hub
    staging = tmp_path / "staging"
    config = ConvertConfig(shard_size_mb=SHARD_SIZE_MB, staging_dir=str(staging), hub_staged_shards=2)
    crashing = BucketHub(fs, root, fail_commit=3)
    monkeypatch.setattr(convert_module, "hf_api", lambda options: crashing)
    with pytest.raises(ConnectionError, match="the stand-in Hub went away"):
        convert(str(DATA / "multi"), URL, config)
    committed = [p for batch in crashing.commits for p in batch]
    assert len(committed) == 6  # two commits of 3 shards made; the third failed
    assert not fs.exists(f"{root}/{fmt.MANIFEST_NAME}")  # a reader sees no dataset yet
    assert (staging / WORK_DIR).is_dir()  # kept for the rerun
    rerun = BucketHub(fs, root)
    monkeypatch.setattr(convert_module, "hf_api", lambda options: rerun)
    result = convert(str(DATA / "multi"), URL, config)
    assert result.shards_skipped >= len(committed)  # not converted again
    assert not set(rerun.preuploaded) & set(committed)  # nor uploaded again
    assert rerun.commits[-1][-1] == fmt.MANIFEST_NAME
    assert_repo_is(fs, root, local_multi, tmp_path)
