"""Converter: exact segments and rows, determinism, resume, refusal, verify — on real LeRobot-written data."""

from __future__ import annotations

import io
import json
import tarfile
import zlib
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from helpers import DATA, FIXTURES, read_frame_code, read_samples
from torchcodec.decoders import VideoDecoder

from lerobot_wds import ConvertConfig, convert, read_manifest, verify
from lerobot_wds import format as fmt
from lerobot_wds.converter.source import open_source


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("converted")
    # multi with small shards: several shards, and episodes whose camera files change inside a shard.
    sizes = {"tiny": 64.0, "multi": 0.4, "h264": 0.3}
    for name in FIXTURES:
        convert(str(DATA / name), str(out / name), ConvertConfig(shard_size_mb=sizes[name]))
    return {name: out / name for name in FIXTURES}


@pytest.mark.parametrize("name", FIXTURES)
def test_every_segment_frame_equals_the_source_frame(converted: dict[str, Path], name: str) -> None:
    source = open_source(str(DATA / name))
    samples = read_samples(converted[name])
    assert sorted(samples) == sorted(source.episodes)
    decoders: dict[str, VideoDecoder] = {}
    checked = 0
    for episode_index, sample in samples.items():
        episode = source.episodes[episode_index]
        for camera_number, camera_key in enumerate(source.camera_keys):
            span = episode.videos[camera_key]
            if span.file not in decoders:
                decoders[span.file] = VideoDecoder(str(DATA / name / span.file), seek_mode="exact")
            first = round(span.from_timestamp * source.fps)
            expected = (
                decoders[span.file].get_frames_at(list(range(first, first + episode.length))).data.numpy()
            )
            segment = VideoDecoder(sample[fmt.video_suffix(camera_key)], seek_mode="exact")
            assert segment.metadata.num_frames == episode.length
            got = segment.get_frames_at(list(range(episode.length))).data.numpy()
            np.testing.assert_array_equal(
                got, expected, err_msg=f"{name} episode {episode_index} {camera_key}"
            )
            assert read_frame_code(got[0]) == (0, episode_index, camera_number)
            assert read_frame_code(got[-1]) == (episode.length - 1, episode_index, camera_number)
            checked += 1
    assert checked == len(source.episodes) * len(source.camera_keys)


@pytest.mark.parametrize("name", FIXTURES)
def test_rows_equal_the_source_rows(converted: dict[str, Path], name: str) -> None:
    source = open_source(str(DATA / name))
    declared = source.data_columns
    data = pa.concat_tables(
        pq.read_table(DATA / name / f, columns=declared)
        for f in sorted({e.data_file for e in source.episodes.values()})
    )
    for episode_index, sample in read_samples(converted[name]).items():
        rows = fmt.decode_rows(sample[fmt.ROWS_SUFFIX], "test", max_rows=10**6, max_bytes=1 << 30)
        expected = data.filter(pc.equal(data["episode_index"], episode_index)).replace_schema_metadata(None)
        assert rows.schema == expected.schema
        assert rows.equals(expected)
        meta = fmt.EpisodeMeta.from_json(sample[fmt.META_SUFFIX], "test")
        assert meta.num_frames == rows.num_rows == source.episodes[episode_index].length
        assert meta.tasks == list(source.episodes[episode_index].tasks)
        assert sorted(meta.cameras) == sorted(source.camera_keys)


def test_manifest_describes_the_shards(converted: dict[str, Path]) -> None:
    root = converted["multi"]
    manifest = read_manifest(str(root))
    assert len(manifest.shards) > 1
    assert manifest.num_frames == 1852
    assert manifest.num_episodes == 24
    assert [e.episode_index for e in manifest.episodes] == list(range(24))
    for name in fmt.META_FILES:
        assert (root / name).read_bytes() == (DATA / "multi" / name).read_bytes()
    for entry in manifest.episodes:
        blob = (root / entry.shard).read_bytes()[entry.offset_bytes : entry.offset_bytes + entry.size_bytes]
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            names = [m.name for m in tar]
        key = fmt.episode_key(entry.episode_index)
        assert names == [f"{key}.{s}" for s in fmt.sample_suffixes(manifest.camera_keys)]
    assert not (root / "_lerobot_wds_work").exists()


def test_two_runs_give_identical_bytes(tmp_path: Path) -> None:
    config = ConvertConfig(shard_size_mb=0.3)
    convert(str(DATA / "h264"), str(tmp_path / "a"), config)
    convert(str(DATA / "h264"), str(tmp_path / "b"), ConvertConfig(shard_size_mb=0.3, workers=2))
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b
    for relative in files_a:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes(), relative


def test_interrupted_conversion_resumes_to_the_same_bytes(tmp_path: Path, fixture_copy) -> None:
    source = fixture_copy("multi")
    config = ConvertConfig(shard_size_mb=0.4, check_level="meta")
    reference = convert(str(source), str(tmp_path / "reference"), config)
    assert len(reference.manifest.shards) >= 3
    # Break the video of the last chunk (same size, so the plan is the same): the run dies after the
    # shards before it are finished, as a killed run would. check_level="meta": the file breaks as if
    # after the checks ran (else they refuse it before anything is written).
    late_video = source / "videos/observation.images.front/chunk-001/file-000.mp4"
    saved = late_video.read_bytes()
    late_video.write_bytes(bytes(len(saved)))
    dest = tmp_path / "dest"
    with pytest.raises(ValueError, match=r"chunk-001/file-000\.mp4"):
        convert(str(source), str(dest), config)
    assert not (dest / fmt.MANIFEST_NAME).exists()
    finished = sorted(p.name for p in (dest / "shards").glob("*.tar"))
    assert 0 < len(finished) < len(reference.manifest.shards)
    # A finished shard damaged after the crash is converted again rather than kept.
    damaged = dest / "shards" / finished[0]
    damaged.write_bytes(damaged.read_bytes()[:-1000])
    late_video.write_bytes(saved)
    resumed = convert(str(source), str(dest), config)
    assert resumed.shards_skipped == len(finished) - 1
    for relative in [fmt.MANIFEST_NAME, *(s.path for s in reference.manifest.shards)]:
        assert (dest / relative).read_bytes() == (tmp_path / "reference" / relative).read_bytes(), relative


def test_other_source_or_options_are_refused(tmp_path: Path) -> None:
    dest = str(tmp_path / "dest")
    convert(str(DATA / "tiny"), dest, ConvertConfig())
    again = convert(str(DATA / "tiny"), dest, ConvertConfig())  # same: nothing to do
    assert again.manifest == read_manifest(dest)
    with pytest.raises(ValueError, match="--overwrite"):
        convert(str(DATA / "tiny"), dest, ConvertConfig(episodes=(0, 1)))
    with pytest.raises(ValueError, match="--overwrite"):
        convert(str(DATA / "multi"), dest, ConvertConfig())
    result = convert(str(DATA / "tiny"), dest, ConvertConfig(episodes=(0, 1), overwrite=True))
    assert [e.episode_index for e in result.manifest.episodes] == [0, 1]
    assert result.manifest.options["episodes"] == [0, 1]


def test_episode_subset_keeps_source_indices(tmp_path: Path) -> None:
    result = convert(str(DATA / "multi"), str(tmp_path / "d"), ConvertConfig(episodes=(3, 20, 7)))
    assert [e.episode_index for e in result.manifest.episodes] == [3, 7, 20]
    samples = read_samples(tmp_path / "d")
    rows = fmt.decode_rows(samples[20][fmt.ROWS_SUFFIX], "test", max_rows=10**6, max_bytes=1 << 30)
    assert set(rows["episode_index"].to_pylist()) == {20}
    with pytest.raises(ValueError, match=r"episodes \[99\] not in the dataset"):
        convert(str(DATA / "multi"), str(tmp_path / "e"), ConvertConfig(episodes=(1, 99)))


def test_verify_passes_then_catches_a_flipped_byte_and_a_truncated_shard(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    convert(str(DATA / "h264"), str(dest), ConvertConfig(shard_size_mb=0.3))
    report = verify(str(dest))
    assert report.ok, report.problems
    assert report.episodes_checked == 24
    shards = sorted((dest / "shards").glob("*.tar"))
    data = bytearray(shards[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    shards[0].write_bytes(bytes(data))
    shards[1].write_bytes(shards[1].read_bytes()[:5000])
    problems = verify(str(dest)).problems
    assert any(shards[0].name in p and "sha256" in p for p in problems), problems
    assert any(shards[1].name in p and "sha256" in p for p in problems), problems
    assert any(shards[1].name in p and "missing" in p for p in problems), problems


def test_verify_catches_a_wrong_frame_count(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    convert(str(DATA / "tiny"), str(dest), ConvertConfig())
    manifest_path = dest / fmt.MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["episodes"]["num_frames"][2] += 1
    manifest_path.write_text(json.dumps(manifest))
    problems = verify(str(dest)).problems
    assert any("episode 2" in p and "frames" in p for p in problems), problems


def test_convert_into_s3_then_verify(tmp_path: Path, s3_server: dict, s3_bucket: str) -> None:
    """A bucket destination: the same bytes as a local conversion, manifest last, no work files left."""
    import s3fs

    dest = f"s3://{s3_bucket}/multi"
    config = ConvertConfig(shard_size_mb=0.4, storage_options=s3_server)
    remote = convert(str(DATA / "multi"), dest, config)
    local = convert(str(DATA / "multi"), str(tmp_path / "local"), ConvertConfig(shard_size_mb=0.4))
    assert remote.manifest.shards == local.manifest.shards
    fs = s3fs.S3FileSystem(**s3_server)
    names = sorted(p.removeprefix(f"{s3_bucket}/multi/") for p in fs.find(f"{s3_bucket}/multi"))
    local_names = sorted(
        str(p.relative_to(tmp_path / "local")) for p in (tmp_path / "local").rglob("*") if p.is_file()
    )
    assert names == local_names
    assert read_manifest(dest, s3_server) == remote.manifest
    assert verify(dest, s3_server).ok
    for name in names:
        assert s3_server["secret"].encode() not in fs.cat_file(f"{s3_bucket}/multi/{name}")
    again = convert(str(DATA / "multi"), dest, config)  # complete: nothing to do
    assert again.shards_skipped == len(remote.manifest.shards)


def test_interrupted_upload_to_s3_resumes_without_uploading_finished_shards(
    tmp_path: Path, fixture_copy, s3_server: dict, s3_bucket: str
) -> None:
    """Killed mid-run (a broken source file), resumed: finished shards are checked (size and sha256) and
    kept, never uploaded again (counted at the wire); a damaged one is converted again."""
    import s3fs
    from faultproxy import FaultProxy

    source = fixture_copy("multi")
    config = ConvertConfig(shard_size_mb=0.4, check_level="meta")
    reference = convert(str(source), str(tmp_path / "reference"), config)
    late_video = source / "videos/observation.images.front/chunk-001/file-000.mp4"
    saved = late_video.read_bytes()
    late_video.write_bytes(bytes(len(saved)))
    proxy = FaultProxy(int(s3_server["client_kwargs"]["endpoint_url"].rsplit(":", 1)[1]))
    through = {**s3_server, "client_kwargs": {"endpoint_url": proxy.endpoint}}
    s3_config = ConvertConfig(shard_size_mb=0.4, check_level="meta", storage_options=through)
    dest = f"s3://{s3_bucket}/multi"
    fs = s3fs.S3FileSystem(**s3_server)
    try:
        with pytest.raises(ValueError, match=r"chunk-001/file-000\.mp4"):
            convert(str(source), dest, s3_config)
        assert not fs.exists(f"{s3_bucket}/multi/{fmt.MANIFEST_NAME}")
        finished = sorted(p.rsplit("/", 1)[1] for p in fs.find(f"{s3_bucket}/multi/shards"))
        assert 0 < len(finished) < len(reference.manifest.shards)
        damaged = f"{s3_bucket}/multi/shards/{finished[0]}"
        fs.pipe_file(damaged, fs.cat_file(damaged)[:-1000])
        late_video.write_bytes(saved)
        proxy.request_log.clear()
        resumed = convert(str(source), dest, s3_config)
        uploads = {path for method, path in proxy.request_log if method in ("PUT", "POST")}
    finally:
        proxy.close()
    assert resumed.shards_skipped == len(finished) - 1
    shard_uploads = sorted(path.rsplit("/", 1)[1] for path in uploads if "/shards/" in path)
    expected = sorted(
        {finished[0]} | {s.path.rsplit("/", 1)[1] for s in reference.manifest.shards} - set(finished)
    )
    assert shard_uploads == expected
    for relative in [fmt.MANIFEST_NAME, *(s.path for s in reference.manifest.shards)]:
        ours = fs.cat_file(f"{s3_bucket}/multi/{relative}")
        assert ours == (tmp_path / "reference" / relative).read_bytes(), relative


@pytest.mark.parametrize("workers", [1, 2])
def test_storage_options_never_reach_files_or_errors(tmp_path: Path, fixture_copy, workers: int) -> None:
    source = fixture_copy("multi")
    (source / "videos/observation.images.front/chunk-001/file-000.mp4").write_bytes(b"broken")
    dest = tmp_path / "dest"
    secret = "SECRET-TOKEN-1234"
    with pytest.raises(ValueError, match="chunk-001") as failure:
        convert(
            str(source),
            str(dest),
            ConvertConfig(
                shard_size_mb=0.4, workers=workers, check_level="meta", storage_options={"token": secret}
            ),
        )
    assert secret not in str(failure.value)
    written = [p for p in dest.rglob("*") if p.is_file()]
    assert any(p.name == "executor.json" for p in written)  # datatrove serialised the pipeline...
    for path in written:
        assert secret.encode() not in path.read_bytes(), path  # ...without the options


def test_depth_segments_keep_every_12_bit_value(tmp_path: Path) -> None:
    """tests/data/depth (LeRobot-written): the depth camera is 12-bit HEVC (gray12le); every segment
    decodes to the source's own 12-bit codes, and its RGB camera as usual."""
    convert(str(DATA / "depth"), str(tmp_path / "depth"), ConvertConfig())
    source = open_source(str(DATA / "depth"))
    samples = read_samples(tmp_path / "depth")
    for camera_key in source.camera_keys:
        file = source.episodes[0].videos[camera_key].file
        with av.open(str(DATA / "depth" / file)) as container:
            expected = [f.to_ndarray(format="gray12le") for f in container.decode(video=0)]
        got = []
        for episode_index in sorted(samples):
            with av.open(io.BytesIO(samples[episode_index][fmt.video_suffix(camera_key)])) as container:
                frames = [f.to_ndarray(format="gray12le") for f in container.decode(video=0)]
            assert len(frames) == source.episodes[episode_index].length
            got.extend(frames)
        assert len(got) == len(expected) == sum(e.length for e in source.episodes.values())
        for index, (ours, theirs) in enumerate(zip(got, expected, strict=True)):
            np.testing.assert_array_equal(ours, theirs, err_msg=f"{camera_key} frame {index}")
    assert verify(str(tmp_path / "depth")).problems == []


def test_each_episode_records_the_crc32_of_its_byte_range(tmp_path: Path) -> None:
    result = convert(str(DATA / "multi"), str(tmp_path / "out"), ConvertConfig(shard_size_mb=0.4))
    for entry in result.manifest.episodes:
        shard = (tmp_path / "out" / entry.shard).read_bytes()
        assert entry.crc32 == zlib.crc32(shard[entry.offset_bytes : entry.offset_bytes + entry.size_bytes])


@pytest.mark.timeout(60)
def test_verify_reports_an_endless_shard_instead_of_reading_it_forever(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    convert(str(DATA / "tiny"), str(dest))
    shard = dest / read_manifest(str(dest)).shards[0].path
    shard.unlink()
    shard.symlink_to("/dev/zero")  # a file that never ends
    problems = verify(str(dest)).problems
    assert any("longer than the" in p for p in problems), problems
