"""The one sample parser: tar streams and ranges, member checks, manifest agreement."""

from __future__ import annotations

import io
import tarfile
from typing import Any

import pyarrow as pa
import pytest
import webdataset as wds

from lerobot_wds import format as fmt
from lerobot_wds.sample import check_members, entry_problems, iter_samples, parse_sample, read_sample

# A camera key long enough that its member names need a PAX header (names over 100 bytes).
CAMERAS = ["observation.images.top", "observation.images." + "x" * 90]


def sample(episode_index: int, num_frames: int) -> dict[str, Any]:
    segment = fmt.CameraSegment(
        codec="av1",
        time_base=(1, 15360),
        first_pts=0,
        num_frames=num_frames,
        from_timestamp=0.0,
        to_timestamp=num_frames / 30,
        source_file="videos/x.mp4",
    )
    meta = fmt.EpisodeMeta(
        episode_index=episode_index,
        num_frames=num_frames,
        tasks=["pick"],
        task_indices=[0],
        cameras=dict.fromkeys(CAMERAS, segment),
    )
    rows = pa.table({"index": list(range(num_frames)), "episode_index": [episode_index] * num_frames})
    return {
        "__key__": fmt.episode_key(episode_index),
        fmt.META_SUFFIX: meta.to_json(),
        fmt.ROWS_SUFFIX: fmt.encode_rows(rows),
        **{fmt.video_suffix(k): f"mp4 of {episode_index} {k}".encode() for k in CAMERAS},
    }


def write_shard(samples: list[dict[str, Any]]) -> tuple[bytes, list[tuple[int, int]]]:
    """A shard as the converter writes it, and each sample's (offset_bytes, size_bytes)."""
    stream = io.BytesIO()
    writer = wds.TarWriter(
        stream, user=fmt.TAR_USER, group=fmt.TAR_GROUP, mode=fmt.TAR_MODE, mtime=fmt.TAR_MTIME, encoder=False
    )
    spans = []
    for s in samples:
        offset = writer.tarstream.offset
        writer.write(s)
        spans.append((offset, writer.tarstream.offset - offset))
    writer.close()
    return stream.getvalue(), spans


def entry(episode_index: int, num_frames: int) -> fmt.EpisodeEntry:
    return fmt.EpisodeEntry(
        episode_index=episode_index,
        num_frames=num_frames,
        dataset_from_index=0,
        shard=fmt.shard_path(0),
        offset_bytes=0,
        size_bytes=0,
        task_indices=(0,),
    )


def members_of(s: dict[str, Any]) -> dict[str, bytes]:
    return {k: v for k, v in s.items() if k != "__key__"}


def test_iter_samples_gives_members_and_offsets_as_written() -> None:
    samples = [sample(3, 5), sample(4, 2), sample(9, 7)]
    data, spans = write_shard(samples)
    got = list(iter_samples(io.BytesIO(data), "shard"))
    assert [g.key for g in got] == ["ep_000003", "ep_000004", "ep_000009"]
    assert [g.offset_bytes for g in got] == [offset for offset, _ in spans]
    assert spans[1][0] - spans[0][0] > 512 * 2 * (2 + len(CAMERAS))  # the PAX headers are counted
    assert [g.members for g in got] == [members_of(s) for s in samples]


def test_read_sample_of_an_episode_range() -> None:
    samples = [sample(3, 5), sample(4, 2)]
    data, spans = write_shard(samples)
    (offset, size), (offset2, size2) = spans
    assert read_sample(data[offset2 : offset2 + size2], "ep_000004", "w") == members_of(samples[1])
    assert read_sample(memoryview(data)[offset : offset + size], "ep_000003", "w") == members_of(samples[0])
    with pytest.raises(fmt.ShardFormatError, match=r"^w: member 'ep_000004\.meta\.json' belongs to another"):
        read_sample(data[offset : offset2 + size2], "ep_000003", "w")


def test_broken_tar_data_and_bad_names() -> None:
    data, spans = write_shard([sample(3, 5), sample(4, 2)])
    with pytest.raises(fmt.ShardFormatError, match=r"^s3://b/shard\.tar: broken tar data \("):
        list(iter_samples(io.BytesIO(data[: spans[1][0] + 700]), "s3://b/shard.tar"))
    with pytest.raises(fmt.ShardFormatError, match=r"^w: broken tar data"):
        read_sample(b"\x01" * 1024, "ep_000003", "w")
    with pytest.raises(fmt.ShardFormatError, match=r"^w: tar member 'ep_000001': no suffix"):
        read_sample(tar_of({"ep_000001": b"x"}), "ep_000001", "w")
    with pytest.raises(fmt.ShardFormatError, match=r"^w: tar member 'ep_000001\.d' is not a file"):
        read_sample(tar_of({"ep_000001.d": None}), "ep_000001", "w")


def tar_of(files: dict[str, bytes | None]) -> bytes:
    """A tar with these members (None: a directory)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data or b""))
    return out.getvalue()


BOUND = {"max_rows": 2, "max_rows_bytes": 1 << 20}


def test_parse_sample_checks_the_members() -> None:
    s = members_of(sample(4, 2))
    parsed = parse_sample(s, CAMERAS, "w", **BOUND)
    assert parsed.meta.episode_index == 4
    assert parsed.rows.num_rows == 2
    assert parsed.videos == {k: s[fmt.video_suffix(k)] for k in CAMERAS}
    del s[fmt.video_suffix(CAMERAS[0])]
    with pytest.raises(fmt.ShardFormatError, match=r"^w: members \[.*\]; expected \[.*\] \(a truncated or"):
        parse_sample(s, CAMERAS, "w", **BOUND)
    with pytest.raises(fmt.ShardFormatError, match=r"^w: members"):
        check_members(s, CAMERAS, "w")
    s = members_of(sample(4, 2)) | {fmt.ROWS_SUFFIX: b"nope"}
    with pytest.raises(fmt.ShardFormatError, match=r"^w: rows member refused; not an Arrow IPC file"):
        parse_sample(s, CAMERAS, "w", **BOUND)


def test_entry_problems() -> None:
    parsed = parse_sample(members_of(sample(4, 2)), CAMERAS, "w", **BOUND)
    assert entry_problems(parsed, entry(4, 2)) == []
    assert entry_problems(parsed, entry(5, 3)) == [
        "meta.json is episode 4; manifest says 5",
        "meta.json has 2 frames; manifest says 3",
        "2 rows; manifest says 3",
    ]
