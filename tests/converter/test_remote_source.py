"""Remote sources: a LeRobot v3 dataset in a real S3 server (SeaweedFS), converted task by task.

Planning reads meta/ and a listing; each shard task downloads only its own episodes' files into its own
cache folder and deletes them after (unless keep_cache). The result is the local conversion's bytes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
from helpers import DATA

from lerobot_wds import ConvertConfig, convert, read_manifest
from lerobot_wds.cli import main
from lerobot_wds.converter.convert import convert_part, plan_conversion
from lerobot_wds.converter.finalize import finalize
from lerobot_wds.converter.remote import RemoteFiles, task_files
from lerobot_wds.converter.source import open_source
from lerobot_wds.converter.workdir import WORK_DIR
from lerobot_wds.storage import HiddenOptions

SHARD_SIZE_MB = 0.4  # multi in 5 shards, neighbours sharing data and video files


@pytest.fixture(scope="module")
def local_multi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("remote-source") / "local"
    convert(str(DATA / "multi"), str(dest), ConvertConfig(shard_size_mb=SHARD_SIZE_MB))
    return dest


@pytest.fixture
def s3_multi(s3_server: dict, s3_bucket: str) -> str:
    """A copy of tests/data/multi in the bucket; returns its URL."""
    import s3fs

    s3fs.S3FileSystem(**s3_server).put(str(DATA / "multi"), f"{s3_bucket}/multi", recursive=True)
    return f"s3://{s3_bucket}/multi"


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def assert_same_conversion(dest: Path, local: Path, source_url: str) -> None:
    """Every file byte-equal; the manifest equal but for where the source was read from."""
    assert files_under(dest) == files_under(local)
    for name in files_under(local):
        if name != "manifest.json":
            assert (dest / name).read_bytes() == (local / name).read_bytes(), name
    ours, theirs = read_manifest(str(dest)), read_manifest(str(local))
    assert ours.source.location == source_url
    assert dataclasses.replace(ours, source=theirs.source) == theirs


def test_planning_reads_meta_and_a_listing_only(s3_multi: str, s3_server: dict, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    config = ConvertConfig(
        shard_size_mb=SHARD_SIZE_MB, source_storage_options=s3_server, cache_dir=str(cache)
    )
    plan = plan_conversion(s3_multi, config)
    local = plan_conversion(str(DATA / "multi"), ConvertConfig(shard_size_mb=SHARD_SIZE_MB))
    assert plan.estimated_bytes == local.estimated_bytes  # sizes from the listing = sizes on disk
    assert plan.shards == local.shards
    assert files_under(cache) == []  # the meta/ copy is gone, and no data or video file was fetched
    source = open_source(s3_multi, storage_options=s3_server, cache_dir=str(cache))
    try:
        assert {p.split("/")[0] for p in files_under(source.root)} == {"meta"}
        with pytest.raises(ValueError, match="not downloaded"):
            source.path(source.episodes[0].data_file)
    finally:
        source.close()
    assert files_under(cache) == []


def test_each_task_downloads_its_own_episodes_files(
    s3_multi: str, s3_server: dict, local_multi: Path, tmp_path: Path
) -> None:
    cache, dest = tmp_path / "cache", tmp_path / "out"
    config = ConvertConfig(
        shard_size_mb=SHARD_SIZE_MB, source_storage_options=s3_server, cache_dir=str(cache), keep_cache=True
    )
    convert(s3_multi, str(dest), config)
    assert_same_conversion(dest, local_multi, s3_multi)
    # keep_cache: each task's folder is still there, holding exactly what the task downloaded
    plan = plan_conversion(str(DATA / "multi"), ConvertConfig(shard_size_mb=SHARD_SIZE_MB))
    folders = {p.name.rpartition("-shard-")[2]: p for p in cache.iterdir() if "-shard-" in p.name}
    assert sorted(folders) == [f"{s.shard_index:06d}" for s in plan.shards]
    everything = files_under(DATA / "multi")
    inodes: dict[str, set[int]] = {}
    for shard in plan.shards:
        folder = folders[f"{shard.shard_index:06d}"]
        fetched = files_under(folder)
        assert fetched == plan.source.files_of(shard.episodes), shard
        assert len(fetched) < len([f for f in everything if f.startswith(("data/", "videos/"))])
        for name in fetched:
            assert (folder / name).read_bytes() == (DATA / "multi" / name).read_bytes()
            inodes.setdefault(name, set()).add((folder / name).stat().st_ino)
    # One worker: a file neighbouring shards share was downloaded once and handed over (hard-linked)
    users = {name: sum(name in plan.source.files_of(s.episodes) for s in plan.shards) for name in inodes}
    assert sum(count > 1 for count in users.values()) >= 4
    assert all(len(found) == 1 for found in inodes.values())
    (shared,) = (p for p in cache.iterdir() if p.name.endswith("--shared"))  # what tasks link from
    assert sorted(p.name.replace("%2F", "/") for p in shared.iterdir()) == sorted(inodes)


def test_two_workers_download_each_file_once_and_empty_the_cache(
    s3_multi: str, s3_server: dict, local_multi: Path, tmp_path: Path
) -> None:
    """2 processes (options and source pickled into spawned tasks) share what they download; the bytes
    downloaded are what the tasks report to datatrove's stats, read before finalize removes them."""
    cache, dest = tmp_path / "cache", tmp_path / "out"
    config = ConvertConfig(
        shard_size_mb=SHARD_SIZE_MB, source_storage_options=s3_server, cache_dir=str(cache), workers=2
    )
    convert_part(s3_multi, str(dest), config, tasks=1, task_index=0)  # = convert without finalize
    stats = json.loads((dest / WORK_DIR / "datatrove/stats.json").read_text())
    downloaded = stats[0]["stats"]["source_downloaded_bytes"]["total"]
    files = [p for folder in ("data", "videos") for p in (DATA / "multi" / folder).rglob("*") if p.is_file()]
    assert downloaded == sum(p.stat().st_size for p in files)  # each data and video file once
    assert list(cache.iterdir()) == []  # no file, no folder left (the cache folder itself is kept)
    finalize(str(dest))
    assert_same_conversion(dest, local_multi, s3_multi)


def test_one_worker_downloads_each_file_once_and_leaves_nothing(
    s3_multi: str, s3_server: dict, local_multi: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without keep_cache, a task keeps what the next one needs (nothing else shares it then)."""
    cache, dest = tmp_path / "cache", tmp_path / "out"
    config = ConvertConfig(
        shard_size_mb=SHARD_SIZE_MB, source_storage_options=s3_server, cache_dir=str(cache)
    )
    with caplog.at_level(logging.DEBUG, logger="lerobot_wds.converter.remote"):
        convert(s3_multi, str(dest), config)
    downloaded = [
        name
        for record in caplog.records
        if record.getMessage().startswith("downloaded: ")
        for name in record.getMessage().removeprefix("downloaded: ").split()
    ]
    plan = plan_conversion(str(DATA / "multi"), ConvertConfig(shard_size_mb=SHARD_SIZE_MB))
    needed = sorted({f for shard in plan.shards for f in plan.source.files_of(shard.episodes)})
    assert sorted(downloaded) == needed  # each once, though 5 tasks need 17 files
    assert sum(len(plan.source.files_of(shard.episodes)) for shard in plan.shards) > len(needed)
    assert list(cache.iterdir()) == []
    assert_same_conversion(dest, local_multi, s3_multi)


def test_parts_from_s3_through_the_cli_then_finalize(
    s3_multi: str, s3_server: dict, local_multi: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--tasks 2 --task-index I`` parts reading the bucket (credentials and endpoint from the environment,
    as s3fs reads them), one with ``--keep-cache``."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["client_kwargs"]["endpoint_url"])
    cache, dest = tmp_path / "cache", tmp_path / "out"
    common = [s3_multi, str(dest), "--shard-size-mb", str(SHARD_SIZE_MB), "--cache-dir", str(cache)]
    assert main(["-q", "convert", *common, "--tasks", "2", "--task-index", "1", "--keep-cache"]) == 0
    kept = files_under(cache)
    plan = plan_conversion(str(DATA / "multi"), ConvertConfig(shard_size_mb=SHARD_SIZE_MB))
    second_half = plan.shards[len(plan.shards) // 2 :]  # part 1 of 2 (convert.part_shards)
    in_tasks = [name.split("/", 1) for name in kept if "-shard-" in name.split("/", 1)[0]]
    assert sorted({name for _, name in in_tasks}) == sorted(
        {f for shard in second_half for f in plan.source.files_of(shard.episodes)}
    )
    assert main(["-q", "convert", *common, "--tasks", "2", "--task-index", "0"]) == 0
    assert files_under(cache) == kept  # part 0 left nothing behind
    assert main(["finalize", str(dest)]) == 0
    assert_same_conversion(dest, local_multi, s3_multi)


def test_a_url_without_a_dataset_is_refused_and_leaves_nothing(
    s3_server: dict, s3_bucket: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError, match=rf"s3://{s3_bucket}/nothing: no meta/info.json"):
        open_source(f"s3://{s3_bucket}/nothing", storage_options=s3_server, cache_dir=str(cache))
    assert list(cache.iterdir()) == []  # the meta/ folder made for it is gone
    with pytest.raises(ValueError, match="--revision applies to Hub repos only"):
        open_source(f"s3://{s3_bucket}/nothing", revision="main", storage_options=s3_server)


def test_a_file_path_leaving_the_dataset_is_refused(tmp_path: Path) -> None:
    """info.json's path templates come from the source: a task never writes outside its cache folder."""
    remote = RemoteFiles(url="s3://bucket/data", options=HiddenOptions({}), cache_dir=str(tmp_path),
                         keep_cache=False)  # fmt: skip
    with (
        pytest.raises(ValueError, match=r"file path '../../escape.mp4' leaves the dataset"),
        task_files(remote, ["../../escape.mp4"], "k"),
    ):
        pass
    assert list(tmp_path.iterdir()) == []
