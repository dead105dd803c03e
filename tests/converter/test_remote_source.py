"""Remote sources: a LeRobot v3 dataset in a real S3 server (SeaweedFS), converted task by task.

Planning reads meta/ and a listing; each shard task reads only its own episodes' bytes, by ranged GETs,
and writes nothing but its shard. The result is the local conversion's bytes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import av
import pyarrow.parquet as pq
import pytest
from helpers import DATA

from lerobot_wds import ConvertConfig, convert, read_manifest
from lerobot_wds.cli import main
from lerobot_wds.converter.convert import convert_part, plan_conversion
from lerobot_wds.converter.finalize import finalize
from lerobot_wds.converter.plan import ConversionPlan, ShardPlan
from lerobot_wds.converter.remote import RemoteFiles, TaskReads
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
        with pytest.raises(ValueError, match="is remote"):
            source.path(source.episodes[0].data_file)
    finally:
        source.close()
    assert files_under(cache) == []


def source_bytes(name: str) -> int:
    """The data and video files' bytes: what converting every episode needs, read once."""
    return sum(
        p.stat().st_size for d in ("data", "videos") for p in (DATA / name / d).rglob("*") if p.is_file()
    )


def task_stats(dest: Path) -> list[dict]:
    """datatrove's stats of each task (rank order), read before finalize removes them."""
    return [
        json.loads(p.read_text())[0]["stats"] for p in sorted((dest / WORK_DIR / "datatrove/stats").iterdir())
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_tasks_read_their_episodes_bytes_only(
    s3_multi: str, s3_server: dict, local_multi: Path, tmp_path: Path, workers: int
) -> None:
    """Five tasks, neighbours sharing data and video files, each read by ranges: together they fetch
    about the source once (each task: a file's index or footer, then its own episodes' bytes), write
    nothing to the cache, and the shards are the local conversion's. 2 workers: options and source
    pickled into spawned tasks."""
    cache, dest = tmp_path / "cache", tmp_path / "out"
    config = ConvertConfig(
        shard_size_mb=SHARD_SIZE_MB, source_storage_options=s3_server, cache_dir=str(cache), workers=workers
    )
    convert_part(s3_multi, str(dest), config, tasks=1, task_index=0)  # = convert without finalize
    per_task = [stats["source_downloaded_bytes"]["total"] for stats in task_stats(dest)]
    plan = plan_conversion(str(DATA / "multi"), ConvertConfig(shard_size_mb=SHARD_SIZE_MB))
    sizes = plan.source.file_sizes(plan.source.files_of(e.episode_index for e in plan.episodes))
    assert len(per_task) == len(plan.shards) == 5
    touched = [sum(sizes[f] for f in plan.source.files_of(shard.episodes)) for shard in plan.shards]
    assert all(got < whole for got, whole in zip(per_task, touched, strict=True)), (per_task, touched)
    assert sum(touched) > 1.5 * source_bytes("multi")  # whole files would be fetched 1.5x over
    # 1.044x measured: per mp4 its index (~3.5 KiB) once per task, per parquet file its footer, and the
    # packets PyAV's avio reads through to reach a task's first episode less than 32 KiB ahead (a short
    # forward seek is a read); no byte twice, no packet of the next episode, no read-ahead
    assert sum(per_task) <= 1.06 * source_bytes("multi")
    assert list(cache.iterdir()) == []
    finalize(str(dest))
    assert_same_conversion(dest, local_multi, s3_multi)


# FFmpeg's avio (PyAV's reads): a 4 KiB buffer (converter/segment.py) and forward gaps up to the buffer plus
# SHORT_SEEK_THRESHOLD (32 KiB, libavformat/aviobuf.c) read through instead of seeking
_AVIO_BUFFER_BYTES, _SHORT_SEEK_BYTES = 4096, 32 << 10


def mp4_bound(path: Path, frames: set[int], fps: int) -> int:
    """The most a task cutting ``frames`` out of ``path`` should fetch: its packets, from the first to the
    last (contiguous: LeRobot concatenates per-episode encodes), and what opening reads (avio's first
    buffer; PyAV's probe of the file's first packet), the gap between them when avio reads it through."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        start_pts = stream.start_time or 0
        packets = [
            (round((p.pts - start_pts) * stream.time_base * fps), p.pos, p.size)
            for p in container.demux(stream)
            if p.pts is not None and p.pos is not None and p.size
        ]
    first_end = min(pos + size for _, pos, size in packets)
    mine = [(pos, pos + size) for index, pos, size in packets if index in frames]
    start, end = min(s for s, _ in mine), max(e for _, e in mine)
    opened = max(_AVIO_BUFFER_BYTES, first_end + _AVIO_BUFFER_BYTES)
    if start - opened <= _AVIO_BUFFER_BYTES + _SHORT_SEEK_BYTES:
        opened = start
    return min(opened, start) + end - start


def parquet_bound(path: Path, episodes: set[int]) -> int:
    """The footer and the span of the column chunks of the row groups holding ``episodes``."""
    parquet = pq.ParquetFile(path)
    spans = []
    for group in range(parquet.metadata.num_row_groups):
        indices = parquet.read_row_group(group, columns=["episode_index"])["episode_index"].to_pylist()
        if episodes & set(indices):
            row_group = parquet.metadata.row_group(group)
            for column in range(row_group.num_columns):
                chunk = row_group.column(column)
                first = min(o for o in (chunk.dictionary_page_offset, chunk.data_page_offset) if o)
                spans.append((first, first + chunk.total_compressed_size))
    chunks = max(e for _, e in spans) - min(s for s, _ in spans) if spans else 0
    return parquet.metadata.serialized_size + 8 + chunks


def task_bound(plan: ConversionPlan, shard: ShardPlan) -> int:
    """What a task writing ``shard`` should download at most, from the source files' layout."""
    episodes = [plan.source.episodes[e] for e in shard.episodes]
    bound = 0
    for relative in sorted({e.data_file for e in episodes}):
        mine = {e.episode_index for e in episodes if e.data_file == relative}
        bound += parquet_bound(DATA / "multi" / relative, mine)
    spans = [span for e in episodes for span in e.videos.values()]
    for relative in sorted({span.file for span in spans}):
        frames = {
            round(span.from_timestamp * plan.source.fps) + i
            for e in episodes
            for span in e.videos.values()
            if span.file == relative
            for i in range(e.length)
        }
        bound += mp4_bound(DATA / "multi" / relative, frames, plan.source.fps)
    return bound


def test_each_task_downloads_within_its_layout_bound(s3_multi: str, s3_server: dict, tmp_path: Path) -> None:
    """Per task: no byte twice, no packet of a later episode, no read-ahead past a small header; only
    what opening a file reads and avio's read-through of a short gap come on top of its own bytes."""
    dest = tmp_path / "out"
    config = ConvertConfig(
        shard_size_mb=SHARD_SIZE_MB, source_storage_options=s3_server, cache_dir=str(tmp_path / "cache")
    )
    convert_part(s3_multi, str(dest), config, tasks=1, task_index=0)
    per_task = [stats["source_downloaded_bytes"]["total"] for stats in task_stats(dest)]
    plan = plan_conversion(str(DATA / "multi"), ConvertConfig(shard_size_mb=SHARD_SIZE_MB))
    bounds = [task_bound(plan, shard) for shard in plan.shards]
    assert all(got <= bound for got, bound in zip(per_task, bounds, strict=True)), (per_task, bounds)


def test_parts_from_s3_through_the_cli_then_finalize(
    s3_multi: str, s3_server: dict, local_multi: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--tasks 2 --task-index I`` parts reading the bucket (credentials and endpoint from the environment,
    as s3fs reads them); nothing left in the cache folder."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["client_kwargs"]["endpoint_url"])
    cache, dest = tmp_path / "cache", tmp_path / "out"
    common = [s3_multi, str(dest), "--shard-size-mb", str(SHARD_SIZE_MB), "--cache-dir", str(cache)]
    assert main(["-q", "convert", *common, "--tasks", "2", "--task-index", "1"]) == 0
    assert main(["-q", "convert", *common, "--tasks", "2", "--task-index", "0"]) == 0
    assert files_under(cache) == []
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


def test_a_file_path_leaving_the_dataset_is_refused() -> None:
    """info.json's path templates come from the source: a task never reads outside the dataset."""
    remote = RemoteFiles(url="s3://bucket/data", options=HiddenOptions({}), cache_dir=None)
    with pytest.raises(ValueError, match=r"file path '../../escape.mp4' leaves the dataset"):
        TaskReads(remote).open("../../escape.mp4")
