"""The one parser of samples in tar bytes, shared by the reader and ``verify``.

The reader parses one episode's byte range (``read_sample``); ``verify`` streams a whole shard sample
by sample (``iter_samples``); both then check a sample against the format (``parse_sample``) and
against its manifest entry (``entry_problems``). Names and schemas come from :mod:`lerobot_wds.format`.

The tar reading is tarfile's stream mode (``r|``), which is what webdataset's ``tar_file_iterator``
wraps: that iterator does not expose a member's header offset, and ``verify`` needs it to check the
manifest's ``offset_bytes``.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO

import pyarrow as pa

from . import format as fmt
from .format import ShardFormatError


@dataclass(frozen=True, slots=True)
class TarSample:
    """One sample's members as stored: the bytes of each member, by suffix."""

    key: str  # e.g. "ep_000123"
    offset_bytes: int  # offset of its first member's first header in the stream
    members: dict[str, bytes]  # suffix -> bytes, e.g. "rows.arrow" -> ...


def _iter_members(stream: IO[bytes] | io.RawIOBase, where: str) -> Iterator[tuple[str, str, int, bytes]]:
    """``(key, suffix, header offset, data)`` per member, read sequentially (no seeks)."""
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if not member.isreg():
                    raise ShardFormatError(f"{where}: tar member {member.name!r} is not a file")
                try:
                    key, suffix = fmt.split_member_name(member.name)
                except ShardFormatError as exc:
                    raise ShardFormatError(f"{where}: {exc}") from exc
                extracted = tar.extractfile(member)
                data = extracted.read() if extracted is not None else b""
                tar.members = []  # type: ignore[attr-defined]  # stream mode keeps every header otherwise
                yield key, suffix, member.offset, data
    except (tarfile.TarError, EOFError) as exc:
        raise ShardFormatError(f"{where}: broken tar data ({exc})") from exc


def iter_samples(stream: IO[bytes] | io.RawIOBase, where: str) -> Iterator[TarSample]:
    """The samples of a tar stream in order, one held in memory at a time.

    A sample is a run of consecutive members with one key; a key that comes back later is yielded
    again (the caller decides whether that is an error). Raises :class:`ShardFormatError` on broken
    tar data or a member name without a suffix.
    """
    current: TarSample | None = None
    for key, suffix, offset, data in _iter_members(stream, where):
        if current is not None and current.key != key:
            yield current
            current = None
        if current is None:
            current = TarSample(key=key, offset_bytes=offset, members={})
        current.members[suffix] = data
    if current is not None:
        yield current


def read_sample(data: bytes | memoryview, key: str, where: str) -> dict[str, bytes]:
    """The members of one sample's tar bytes (an episode's byte range), by suffix."""
    members = {}
    for member_key, suffix, _, member_data in _iter_members(io.BytesIO(data), where):
        if member_key != key:
            name = f"{member_key}.{suffix}"
            raise ShardFormatError(f"{where}: member {name!r} belongs to another sample")
        members[suffix] = member_data
    return members


@dataclass(frozen=True, slots=True)
class EpisodeSample:
    """A sample checked against the format: its metadata, its rows and its still-encoded segments."""

    meta: fmt.EpisodeMeta
    rows: pa.Table
    videos: dict[str, bytes]  # camera key -> standalone mp4


def check_members(members: Mapping[str, bytes], camera_keys: list[str], where: str) -> None:
    """:class:`ShardFormatError` unless a sample has exactly the members the format names."""
    expected = fmt.sample_suffixes(camera_keys)
    if sorted(members) != expected:
        raise ShardFormatError(
            f"{where}: members {sorted(members)}; expected {expected} (a truncated or foreign shard?)"
        )


def parse_sample(
    members: Mapping[str, bytes], camera_keys: list[str], where: str, *, max_rows: int, max_rows_bytes: int
) -> EpisodeSample:
    """Check a sample's member set, parse its meta.json and rows; :class:`ShardFormatError` if malformed.
    The rows are refused before decompression past ``max_rows`` rows or ``max_rows_bytes`` inflated (the
    manifest's frame count and :func:`lerobot_wds.format.max_rows_bytes`)."""
    check_members(members, camera_keys, where)
    return EpisodeSample(
        meta=fmt.EpisodeMeta.from_json(members[fmt.META_SUFFIX], where),
        rows=fmt.decode_rows(members[fmt.ROWS_SUFFIX], where, max_rows=max_rows, max_bytes=max_rows_bytes),
        videos={k: members[fmt.video_suffix(k)] for k in camera_keys},
    )


def entry_problems(sample: EpisodeSample, entry: fmt.EpisodeEntry) -> list[str]:
    """How a parsed sample disagrees with its manifest entry (empty if it agrees); without a location."""
    meta, num_frames = sample.meta, entry.num_frames
    problems = []
    if meta.episode_index != entry.episode_index:
        problems.append(f"meta.json is episode {meta.episode_index}; manifest says {entry.episode_index}")
    if meta.num_frames != num_frames:
        problems.append(f"meta.json has {meta.num_frames} frames; manifest says {num_frames}")
    if sample.rows.num_rows != num_frames:
        problems.append(f"{sample.rows.num_rows} rows; manifest says {num_frames}")
    return problems
