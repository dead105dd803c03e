"""The corruption matrix as data: named corruptions of a converted dataset, and what each must give.

Each :class:`Corruption` changes a fresh copy of the converted ``tiny`` fixture (1 shard, episodes 0-5,
one camera ``observation.images.front``) in place. ``reader`` says what a whole epoch must give: a clear
error (a regex on ``"{ExceptionType}: {message}"``, which names the file, and the shard and episode
where one is involved) or ``None`` for a correct read (every item checked against its self-describing
values). ``verify`` is the regex that ``lerobot-wds verify``'s output must match with a non-zero exit,
or ``None`` for exit 0.

Two kinds of shard corruption: ``raw`` (bytes changed, manifest untouched: a disk or transfer fault,
which the per-episode crc32 must catch) and ``resync`` (the manifest's sizes, offsets, crc32 and sha256
rewritten to match the changed shard: a hostile or buggy writer, so the checks behind the crc32 are
reached). Run by tests/test_corruptions.py through tests/corruption_run.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

SHARD = "shards/shard-000000.tar"
TARGET = 2  # the episode most corruptions hit (40 frames; 1 and 3 neighbour it)
KEY = f"ep_{TARGET:06d}"
CAMERA = "observation.images.front"
MARKER = "unpickled.marker"  # created in the dataset root if any pickle member were ever loaded
BOMB_BYTES = 2 << 30  # what the rows bomb inflates to: past the child's memory limit if decompressed


@dataclass(frozen=True)
class Corruption:
    name: str
    apply: Callable[[Path], None]
    reader: str | None  # regex on "Type: message", or None: a correct read
    verify: str | None  # regex on verify's output (exit 1 or 2), or None: exit 0
    with_workers: bool = False  # also read at num_workers=2 (a representative subset: CI time)


# --------------------------------------------------------------------------------- tar helpers


def read_members(shard: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(shard) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]  # type: ignore[union-attr]


def write_members(shard: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for member, data in members:
            member.size = len(data) if member.isreg() else 0
            tar.addfile(member, io.BytesIO(data) if member.isreg() else None)
    shard.write_bytes(out.getvalue())


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / "manifest.json").read_text())


def write_manifest(root: Path, obj: dict[str, Any]) -> None:
    (root / "manifest.json").write_text(json.dumps(obj))


def resync(root: Path) -> None:
    """Rewrite the manifest to match the shard as it now is: each episode's range runs from its first
    member's header to the next episode's first header (members between belong to it), crc32 of that
    range, and the shard's size and sha256. What a writer that believes its own output would publish."""
    obj = manifest(root)
    shard = root / SHARD
    data = shard.read_bytes()
    starts: dict[int, int] = {}
    end_of_members = 0
    with tarfile.open(shard) as tar:
        for member in tar:
            key = member.name.partition(".")[0]
            if key.startswith("ep_") and key[3:].isdigit():
                starts.setdefault(int(key[3:]), member.offset)
            end_of_members = member.offset_data + (-(-member.size // 512)) * 512
    columns = obj["episodes"]
    ordered = [*sorted(starts.values()), end_of_members]
    for position, episode in enumerate(columns["episode_index"]):
        if episode in starts:  # else (a header broken past reading): its old range
            start = starts[episode]
            columns["offset_bytes"][position] = start
            columns["size_bytes"][position] = ordered[ordered.index(start) + 1] - start
        start = columns["offset_bytes"][position]
        columns["crc32"][position] = zlib.crc32(data[start : start + columns["size_bytes"][position]])
    obj["shards"][0]["size_bytes"] = len(data)
    obj["shards"][0]["sha256"] = hashlib.sha256(data).hexdigest()
    write_manifest(root, obj)


def edit_members(edit: Callable[[list[tuple[tarfile.TarInfo, bytes]]], None], sync: bool = True):
    def apply(root: Path) -> None:
        members = read_members(root / SHARD)
        edit(members)
        write_members(root / SHARD, members)
        if sync:
            resync(root)

    return apply


def member_index(members: list[tuple[tarfile.TarInfo, bytes]], suffix: str, key: str = KEY) -> int:
    return next(i for i, (m, _) in enumerate(members) if m.name == f"{key}.{suffix}")


def insert_after_target(member: tuple[tarfile.TarInfo, bytes]):
    """Add a member inside the target episode's byte range (after its last member)."""

    def edit(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        last = max(i for i, (m, _) in enumerate(members) if m.name.startswith(KEY + "."))
        members.insert(last + 1, member)

    return edit


def replace_member(suffix: str, make: Callable[[bytes], bytes], sync: bool = True):
    def edit(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        i = member_index(members, suffix)
        members[i] = (members[i][0], make(members[i][1]))

    return edit_members(edit, sync)


# ------------------------------------------------------------------------------ byte helpers


def target_range(root: Path) -> tuple[int, int]:
    columns = manifest(root)["episodes"]
    position = columns["episode_index"].index(TARGET)
    start = columns["offset_bytes"][position]
    return start, start + columns["size_bytes"][position]


def member_data_span(root: Path, suffix: str) -> tuple[int, int]:
    with tarfile.open(root / SHARD) as tar:
        member = tar.getmember(f"{KEY}.{suffix}")
    return member.offset_data, member.offset_data + member.size


def flip_at(locate: Callable[[Path], int]):
    def apply(root: Path) -> None:
        data = bytearray((root / SHARD).read_bytes())
        data[locate(root)] ^= 0x5A
        (root / SHARD).write_bytes(bytes(data))

    return apply


def truncate_at(locate: Callable[[Path], int]):
    def apply(root: Path) -> None:
        shard = root / SHARD
        shard.write_bytes(shard.read_bytes()[: locate(root)])

    return apply


def middle_of(suffix: str) -> Callable[[Path], int]:
    def locate(root: Path) -> int:
        start, end = member_data_span(root, suffix)
        return (start + end) // 2

    return locate


# ------------------------------------------------------------------------------ member content


class _Touch:
    """A pickle whose loading creates the marker file: proof that nothing ever unpickles a member."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def pickle_member(suffix: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        payload = pickle.dumps(_Touch(str(root / MARKER)))
        edit_members(insert_after_target(file_member(f"{KEY}.{suffix}", payload)))(root)

    return apply


def rows_bomb(data: bytes) -> bytes:
    """The episode's rows plus a column that zstd-compresses BOMB_BYTES of zeros to a few hundred KB.
    np.zeros is calloc'd: compressing reads the kernel's zero page, so writing the bomb costs no memory."""
    import pyarrow.ipc as ipc

    table = ipc.open_file(pa.BufferReader(data)).read_all()
    width = BOMB_BYTES // table.num_rows
    zeros = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(width * table.num_rows, np.uint8)), width)
    table = table.append_column("bomb", zeros)
    sink = io.BytesIO()
    with ipc.new_file(sink, table.schema, options=ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    return sink.getvalue()


def rows_without_last(data: bytes) -> bytes:
    import pyarrow.ipc as ipc

    table = ipc.open_file(pa.BufferReader(data)).read_all()
    sink = io.BytesIO()
    with ipc.new_file(sink, table.schema, options=ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table.slice(0, table.num_rows - 1))
    return sink.getvalue()


def one_frame_less(root: Path) -> None:
    """meta.json, rows and manifest agree on one frame less than the mp4 has (an mp4 with more frames)."""

    def edit(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        i = member_index(members, "meta.json")
        meta = json.loads(members[i][1])
        meta["num_frames"] -= 1
        members[i] = (members[i][0], json.dumps(meta).encode())
        j = member_index(members, "rows.arrow")
        members[j] = (members[j][0], rows_without_last(members[j][1]))

    edit_members(edit)(root)
    obj = manifest(root)
    columns = obj["episodes"]
    position = columns["episode_index"].index(TARGET)
    columns["num_frames"][position] -= 1
    for later in range(position + 1, len(columns["episode_index"])):
        columns["dataset_from_index"][later] -= 1
    obj["shards"][0]["num_frames"] -= 1
    write_manifest(root, obj)


def shorter_mp4(root: Path) -> None:
    """The target's mp4 swapped for episode 5's (21 frames, the manifest says 40): an mp4 with fewer."""

    def edit(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        other = members[member_index(members, f"{CAMERA}.mp4", key="ep_000005")][1]
        i = member_index(members, f"{CAMERA}.mp4")
        members[i] = (members[i][0], other)

    edit_members(edit)(root)


def link_member(kind: bytes) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        info = tarfile.TarInfo(f"{KEY}.link.mp4")
        info.type = kind
        info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else f"{KEY}.meta.json"
        edit_members(insert_after_target((info, b"")))(root)

    return apply


# ---------------------------------------------------------------------------------- manifest


def set_manifest(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        obj = manifest(root)
        replaced = change(obj)
        write_manifest(root, obj if replaced is None else replaced)

    return apply


def set_column(name: str, value: Any, position: int = TARGET) -> Callable[[Path], None]:
    def change(obj: dict[str, Any]) -> None:
        obj["episodes"][name][position] = value

    return set_manifest(change)


def write_text(relative: str, text: bytes) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / relative).write_bytes(text)

    return apply


def remove(relative: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / relative).unlink()

    return apply


def info_without_features(root: Path) -> None:
    info = json.loads((root / "meta/info.json").read_text())
    del info["features"]
    (root / "meta/info.json").write_text(json.dumps(info))


def gzip_bomb() -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        block = bytes(1 << 20)
        for _ in range(256):
            gz.write(block)
    return out.getvalue()


def last_end(root: Path) -> int:
    columns = manifest(root)["episodes"]
    return max(o + s for o, s in zip(columns["offset_bytes"], columns["size_bytes"], strict=True))


def shard_size(root: Path) -> int:
    return (root / SHARD).stat().st_size


# --------------------------------------------------------------------------------- the matrix

# Regexes. The reader names the shard's URL and the episode; verify names the shard's path.
AT_TARGET = rf"ShardFormatError: .*{SHARD}: episode {TARGET} \({KEY}\)"
ANY_EPISODE = rf"ShardFormatError: .*{SHARD}: episode \d+ \(ep_\d+\)"
TRUNCATED = rf"{ANY_EPISODE}: .*truncated shard"
CRC = rf"{AT_TARGET}: bytes \d+\.\.\d+ have crc32"
V_SHARD = rf"{SHARD}: "
V_TARGET = rf"{SHARD}: episode {TARGET}"
V_SIZE = rf"{SHARD}: \d+ bytes; manifest says"
MANIFEST = r"ShardFormatError: .*manifest\.json"


def _truncations() -> list[Corruption]:
    def at(name: str, locate: Callable[[Path], int], reader: str | None = TRUNCATED) -> Corruption:
        return Corruption(f"truncated at {name}", truncate_at(locate), reader, V_SIZE)

    return [
        at("0 (empty shard)", lambda root: 0),
        at("1", lambda root: 1),
        at("511 (inside the first header)", lambda root: 511),
        at("512 (after the first header)", lambda root: 512),
        at("the target's first header", lambda root: target_range(root)[0]),
        at("inside the target's meta.json", lambda root: middle_of("meta.json")(root)),
        at("inside the target's rows.arrow", lambda root: middle_of("rows.arrow")(root)),
        at("inside the target's mp4", lambda root: middle_of(f"{CAMERA}.mp4")(root)),
        at("one byte before the target's end", lambda root: target_range(root)[1] - 1),
        at("the last episode's end (end-of-archive blocks only)", last_end, None),
        at("one byte before the end", lambda root: shard_size(root) - 1, None),
    ]


CASES: list[Corruption] = [
    *_truncations(),
    # ---- raw flips: the manifest is untouched, the crc32 catches them
    Corruption("flip in a tar header's name", flip_at(lambda root: target_range(root)[0] + 2), CRC,
               V_TARGET, with_workers=True),
    Corruption("flip in a tar header's checksum", flip_at(lambda root: target_range(root)[0] + 150), CRC,
               V_SHARD),
    Corruption("flip in meta.json", flip_at(middle_of("meta.json")), CRC, V_TARGET),
    Corruption("flip in rows.arrow", flip_at(middle_of("rows.arrow")), CRC, V_TARGET, with_workers=True),
    Corruption("flip in the mp4", flip_at(middle_of(f"{CAMERA}.mp4")), CRC, V_TARGET),
    # ---- resync: a consistent manifest over a bad shard; the checks behind the crc32
    Corruption("tar header checksum broken (resync)",
               lambda root: (flip_at(lambda r: target_range(r)[0] + 150)(root), resync(root)),
               rf"{AT_TARGET}: broken tar data", V_SHARD, with_workers=True),
    Corruption("meta.json not JSON (resync)", replace_member("meta.json", lambda d: b"{" + d),
               rf"{AT_TARGET}: not valid JSON", V_TARGET),
    Corruption("meta.json says another episode (resync)",
               replace_member("meta.json", lambda d: d.replace(b'"episode_index":2', b'"episode_index":3')),
               rf"{AT_TARGET}: meta.json is episode 3; manifest says 2", V_TARGET),
    Corruption("meta.json wrong types (resync)",
               replace_member("meta.json", lambda d: d.replace(b'"num_frames":40', b'"num_frames":"40"')),
               rf"{AT_TARGET}: field 'num_frames' is str; expected int", V_TARGET),
    Corruption("rows.arrow random bytes (resync)",
               replace_member("rows.arrow", lambda d: bytes(range(256)) * 8),
               rf"{AT_TARGET}: rows", V_TARGET),
    Corruption("rows.arrow zstd bomb (resync)", replace_member("rows.arrow", rows_bomb),
               rf"{AT_TARGET}: rows member refused; buffers inflate to \d+ bytes; expected at most \d+",
               V_TARGET, with_workers=True),
    Corruption("mp4 random bytes (resync)",
               replace_member(f"{CAMERA}.mp4", lambda d: np.random.default_rng(0).bytes(len(d))),
               rf"{AT_TARGET}: camera 'observation.images.front'", V_TARGET, with_workers=True),
    Corruption("mp4 empty (resync)", replace_member(f"{CAMERA}.mp4", lambda d: b""),
               rf"{AT_TARGET}: camera 'observation.images.front'", V_TARGET),
    Corruption("mp4 cut in half (resync)", replace_member(f"{CAMERA}.mp4", lambda d: d[: len(d) // 2]),
               rf"{AT_TARGET}: camera 'observation.images.front'", V_TARGET),
    Corruption("mp4 with more frames than the manifest (resync)", one_frame_less,
               rf"{AT_TARGET}: camera 'observation.images.front' has 40 frames; manifest says 39", V_TARGET,
               with_workers=True),
    Corruption("mp4 with fewer frames than the manifest (resync)", shorter_mp4,
               rf"{AT_TARGET}: camera 'observation.images.front' has 21 frames; manifest says 40", V_TARGET),
    Corruption("missing member (resync)",
               edit_members(lambda ms: ms.pop(member_index(ms, f"{CAMERA}.mp4"))),
               rf"{AT_TARGET}: members .*; expected", V_TARGET, with_workers=True),
    Corruption("unknown extra member (resync)",
               edit_members(insert_after_target(file_member(f"{KEY}.extra.bin", b"x"))),
               rf"{AT_TARGET}: members .*extra\.bin", V_TARGET),
    Corruption("sample not in the manifest (resync)",
               edit_members(lambda ms: ms.append(file_member("ep_000099.meta.json", b"{}"))),
               None, rf"{SHARD}: sample 'ep_000099' is not in the manifest"),
    Corruption("member named ../x (resync)",
               edit_members(insert_after_target(file_member("../x.meta.json", b"x"))),
               rf"{AT_TARGET}: member '\.\./x\.meta\.json' belongs to another sample", V_SHARD),
    Corruption("member with an absolute name (resync)",
               edit_members(insert_after_target(file_member("/tmp/ep_000002.meta.json", b"x"))),
               rf"{AT_TARGET}: member '/tmp/ep_000002\.meta\.json' belongs to another sample", V_SHARD),
    Corruption("member named ../ in the key's folder (resync)",
               edit_members(insert_after_target(file_member(f"{KEY}/../../x.json", b"x"))),
               rf"{AT_TARGET}: member .* belongs to another sample", V_SHARD),
    Corruption("symlink member (resync)", link_member(tarfile.SYMTYPE),
               rf"{AT_TARGET}: tar member .* is not a file",
               V_SHARD, with_workers=True),
    Corruption("hard-link member (resync)", link_member(tarfile.LNKTYPE),
               rf"{AT_TARGET}: tar member .* is not a file",
               V_SHARD),
    Corruption("pickle member .pyd (resync)", pickle_member("x.pyd"),
               rf"{AT_TARGET}: members .*x\.pyd", V_TARGET),
    Corruption("pickle member .pickle (resync)", pickle_member("x.pickle"),
               rf"{AT_TARGET}: members", V_TARGET),
    Corruption("pickle member .pth (resync)", pickle_member("x.pth"), rf"{AT_TARGET}: members", V_TARGET),
    Corruption("gzip bomb member (resync)",
               edit_members(insert_after_target(file_member(f"{KEY}.x.gz", gzip_bomb()))),
               rf"{AT_TARGET}: members .*x\.gz", V_TARGET),
    # ---- the manifest
    Corruption("manifest not JSON", write_text("manifest.json", b'{"format_version": 1,'),
               rf"{MANIFEST}: not valid JSON", r"manifest\.json: not valid JSON", with_workers=True),
    Corruption("manifest empty", write_text("manifest.json", b""), rf"{MANIFEST}: not valid JSON",
               r"manifest\.json: not valid JSON"),
    Corruption("manifest a JSON list", write_text("manifest.json", b"[1, 2]"),
               rf"{MANIFEST}: expected a JSON object",
               r"manifest\.json: expected a JSON object"),
    Corruption("manifest fps a string", set_manifest(lambda m: m.update(fps="30")),
               rf"{MANIFEST}: field 'fps' is str", r"field 'fps' is str"),
    Corruption("manifest fps 0", set_manifest(lambda m: m.update(fps=0)),
               rf"{MANIFEST}: fps is 0; expected >= 1",
               r"fps is 0"),
    Corruption("manifest episodes a list", set_manifest(lambda m: m.update(episodes=[])),
               rf"{MANIFEST}: field 'episodes' is list", r"field 'episodes' is list"),
    Corruption("manifest offset a string", set_column("offset_bytes", "35328"),
               rf"{MANIFEST}: offset_bytes is str", r"offset_bytes is str"),
    Corruption("manifest num_frames a float", set_column("num_frames", 40.0),
               rf"{MANIFEST}: num_frames is float", r"num_frames is float"),
    Corruption("manifest unknown version", set_manifest(lambda m: m.update(format_version=99)),
               rf"{MANIFEST}: format_version 99; expected 1", r"format_version 99"),
    Corruption("manifest offset past the shard's end", set_column("offset_bytes", 92160),
               rf"{MANIFEST}: episode 2: bytes 92160\.\.\d+; shard {SHARD} has 92160", r"bytes 92160"),
    Corruption("manifest negative offset", set_column("offset_bytes", -512),
               rf"{MANIFEST}: episode 2: offset_bytes is -512; expected >= 0", r"offset_bytes is -512"),
    Corruption("manifest absurd episode size (10**12)", set_column("size_bytes", 10**12),
               rf"{MANIFEST}: episode 2: bytes 35328\.\.1000000035328", r"1000000035328"),
    Corruption("manifest absurd shard and episode size (10**12)",
               lambda root: (set_column("size_bytes", 10**12)(root),
                             set_manifest(lambda m: m["shards"][0].update(size_bytes=2 * 10**12))(root)),
               rf"{AT_TARGET}: ends at byte 1000000035328; the shard has 92160 bytes", V_SIZE,
               with_workers=True),
    Corruption("manifest num_frames more than the shard's", set_column("num_frames", 41),
               rf"{AT_TARGET}: bytes .* have crc32|{AT_TARGET}: meta.json has 40 frames", V_TARGET),
    Corruption("manifest crc32 wrong", set_column("crc32", 12345), CRC,
               rf"{V_TARGET}: bytes \d+\.\.\d+ have crc32 [0-9a-f]{{8}}; manifest says 00003039"),
    Corruption("manifest sha256 wrong", set_manifest(lambda m: m["shards"][0].update(sha256="0" * 64)), None,
               rf"{SHARD}: sha256 [0-9a-f]{{64}}; manifest says 0{{64}}"),
    Corruption("manifest lists an episode twice", set_column("episode_index", 1),
               rf"{MANIFEST}: episode 1: listed twice", r"listed twice"),
    Corruption("manifest shard path outside the root",
               set_manifest(lambda m: m["shards"][0].update(path="../elsewhere.tar")),
               rf"{MANIFEST}: shards\[0\]: shard path '\.\./elsewhere\.tar'", r"shard path"),
    Corruption("shard missing", remove(SHARD), rf"FileNotFoundError: .*{SHARD}", rf"{SHARD}: missing",
               with_workers=True),
    Corruption("manifest missing", remove("manifest.json"), r"FileNotFoundError: .*no manifest\.json",
               r"no manifest\.json"),
    # ---- LeRobot's meta files beside the shards
    Corruption("meta/info.json missing", remove("meta/info.json"),
               r"FileNotFoundError: .*meta/info\.json: missing",
               r"meta/info\.json: missing", with_workers=True),
    Corruption("meta/info.json not JSON", write_text("meta/info.json", b"{ nope"),
               r"ShardFormatError: .*meta/info\.json: not valid JSON", r"meta/info\.json: not valid JSON"),
    Corruption("meta/info.json without features", info_without_features,
               r"ShardFormatError: .*meta/info\.json: missing field 'features'",
               r"meta/info\.json: missing field"),
    Corruption("meta/info.json a list", write_text("meta/info.json", b"[]"),
               r"ShardFormatError: .*meta/info\.json: expected a JSON object", r"meta/info\.json: expected"),
    Corruption("meta/stats.json not JSON", write_text("meta/stats.json", b"\xff\xfe"),
               r"ShardFormatError: .*meta/stats\.json: not valid JSON", r"meta/stats\.json: not valid JSON"),
    Corruption("meta/stats.json a number", write_text("meta/stats.json", b"3"),
               r"ShardFormatError: .*meta/stats\.json: expected a JSON object", r"meta/stats\.json"),
    Corruption("meta/stats.json missing (optional)", remove("meta/stats.json"), None, None),
    Corruption("meta/tasks.parquet missing", remove("meta/tasks.parquet"),
               r"FileNotFoundError: .*meta/tasks\.parquet: missing", r"meta/tasks\.parquet: missing"),
    Corruption("meta/tasks.parquet random bytes", write_text("meta/tasks.parquet", bytes(range(256)) * 4),
               r"ShardFormatError: .*meta/tasks\.parquet: not a Parquet file",
               r"meta/tasks\.parquet: not a Parquet"),
]  # fmt: skip

assert len({c.name for c in CASES}) == len(CASES), "corruption names must be unique"
