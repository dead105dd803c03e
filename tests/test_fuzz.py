"""Fuzzing the parsers of untrusted bytes with hypothesis: the manifest, an episode's meta.json, its tar
bytes and its rows. Whatever the input, the outcome is a parsed value or one ShardFormatError; never
another exception, a hang or an allocation the input's claims would force (the rows bound).

A few hundred examples per parser, derandomized so CI runs the same inputs every time; any input that
ever broke a parser stays below as an ``@example``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import tarfile
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_format import small_manifest
from test_sample import CAMERAS, members_of, sample, write_shard

from lerobot_wds import format as fmt
from lerobot_wds.sample import parse_sample, read_sample

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
BOUND = {"max_rows": 8, "max_rows_bytes": 1 << 20}

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
MANIFEST = json.loads(small_manifest().to_json())


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value (keys of objects, positions of lists)."""
    found = [prefix]
    if isinstance(obj, dict):
        for key, value in obj.items():
            found += paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found += paths(value, (*prefix, i))
    return found


MANIFEST_PATHS = paths(MANIFEST)[1:]


def replaced(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    obj = copy.deepcopy(obj)
    parent = obj
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return obj


def parse_manifest(data: bytes) -> fmt.Manifest | None:
    try:
        manifest = fmt.Manifest.from_json(data, "m.json")
    except fmt.ShardFormatError:
        return None
    sizes = {s.path: s.size_bytes for s in manifest.shards}  # what a parsed manifest promises the reader
    for entry in manifest.episodes:
        assert entry.num_frames >= 1
        assert 0 <= entry.offset_bytes < entry.offset_bytes + entry.size_bytes <= sizes[entry.shard]
    assert len({e.episode_index for e in manifest.episodes}) == len(manifest.episodes)
    return manifest


@FUZZ
@given(st.binary(max_size=64))
@example(b"\xff")  # not UTF-8
@example(b"[]")
def test_manifest_bytes(data: bytes) -> None:
    parse_manifest(data)


@FUZZ
@given(JSON)
@example({"format_version": 1})
def test_manifest_json_values(value: Any) -> None:
    parse_manifest(json.dumps(value).encode())


@FUZZ
@given(st.sampled_from(MANIFEST_PATHS), JSON)
@example(("episodes", "offset_bytes", 0), -1)
@example(("episodes", "size_bytes", 0), 10**12)
@example(("fps",), 0)
@example(("episodes", "episode_index", 1), 0)  # listed twice
@example(("shards", 0, "path"), "../x.tar")
@example(("episodes", "shard_index", 0), True)  # a bool is not an int
@example(("psnr_db",), True)  # found by this test: TypeError from dict(True)
@example(("psnr_db",), [[]])  # found by this test: ValueError from dict([[]])
@example(("shards", 0, "episodes", 0), "7")  # an episode key would be formatted from a str
@example(("camera_keys", 0), 3)
@example(("shards",), None)  # found by this test: TypeError iterating None
@example(("source", "revision"), 3)
def test_manifest_one_field_replaced(path: tuple[Any, ...], value: Any) -> None:
    parse_manifest(json.dumps(replaced(MANIFEST, path, value)).encode())


META = json.loads(members_of(sample(4, 2))[fmt.META_SUFFIX])


@FUZZ
@given(st.sampled_from(paths(META)[1:]), JSON)
@example(("cameras", CAMERAS[0], "time_base"), [0, 1])
def test_episode_meta_one_field_replaced(path: tuple[Any, ...], value: Any) -> None:
    with contextlib.suppress(fmt.ShardFormatError):
        fmt.EpisodeMeta.from_json(json.dumps(replaced(META, path, value)), "w")


SHARD, SPANS = write_shard([sample(3, 2), sample(4, 2)])
START, SIZE = SPANS[1]
EPISODE = SHARD[START : START + SIZE]


def parse_episode_bytes(data: bytes) -> None:
    """read_sample + parse_sample on an episode's byte range: parsed or one ShardFormatError."""
    try:
        members = read_sample(data, "ep_000004", "w")
        parse_sample(members, CAMERAS, "w", **BOUND)
    except fmt.ShardFormatError as exc:
        message = str(exc)
    else:
        return
    assert message.startswith("w: ")  # the location comes first


@FUZZ
@given(st.lists(st.tuples(st.integers(0, SIZE - 1), st.integers(1, 255)), min_size=1, max_size=8))
@example([(0, 0x5A)])  # the first header's name
@example([(148, 1)])  # a header checksum
def test_episode_bytes_with_flipped_bytes(flips: list[tuple[int, int]]) -> None:
    data = bytearray(EPISODE)
    for position, mask in flips:
        data[position] ^= mask
    parse_episode_bytes(bytes(data))


@FUZZ
@given(st.integers(0, SIZE), st.binary(max_size=600))
@example(512, b"")  # cut after the first header
def test_episode_bytes_cut_and_spliced(cut: int, tail: bytes) -> None:
    parse_episode_bytes(EPISODE[:cut] + tail)


ROWS = members_of(sample(4, 2))[fmt.ROWS_SUFFIX]


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(ROWS) - 1), st.integers(1, 255)), min_size=1, max_size=6))
def test_rows_with_flipped_bytes(flips: list[tuple[int, int]]) -> None:
    data = bytearray(ROWS)
    for position, mask in flips:
        data[position] ^= mask
    with contextlib.suppress(fmt.ShardFormatError):
        fmt.decode_rows(bytes(data), "w", max_rows=2, max_bytes=1 << 16)


def test_a_link_or_folder_member_never_passes() -> None:
    """Member kinds a fuzzer seldom makes by flipping bytes, made directly."""
    for kind in (tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            info = tarfile.TarInfo("ep_000004.meta.json")
            info.type, info.linkname = kind, "/etc/passwd"
            tar.addfile(info)
        with pytest.raises(fmt.ShardFormatError, match=r"is not a file"):
            read_sample(out.getvalue(), "ep_000004", "w")
