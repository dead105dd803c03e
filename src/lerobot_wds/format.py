"""The lerobot-wds shard format: every fact about the bytes on disk lives here.

Writer (``converter``) and reader (``reader``) both import this module; nothing else builds member
names or parses the manifest by hand. ``FORMAT.md`` describes the same thing for humans.

A converted dataset is a folder (local or in a bucket)::

    manifest.json                  # written last: its presence means "complete"
    meta/info.json                 # copied unchanged from the LeRobot v3 source
    meta/stats.json
    meta/tasks.parquet
    meta/episodes/chunk-000/file-000.parquet   # LeRobot's episode table, for ``export`` (may be absent)
    shards/shard-000000.tar        # whole episodes, one WebDataset sample each

Sample ``ep_000123`` holds ``ep_000123.meta.json``, ``ep_000123.rows.arrow`` and one
``ep_000123.<camera_key>.mp4`` per camera.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from . import _ipc, storage
from .storage import StorageOptions

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"  # written last: its presence means "complete"
META_FILES = ("meta/info.json", "meta/stats.json", "meta/tasks.parquet")  # copied unchanged
# LeRobot's episode table (per-episode stats/* included), copied unchanged so that ``export`` can give
# the stats back; a conversion may lack it (readers never need it). Nothing else reads it.
EPISODES_META_GLOB = "meta/episodes/*/*.parquet"
SHARD_DIR = "shards"
EPISODE_KEY_PREFIX = "ep_"
META_SUFFIX = "meta.json"
# Arrow IPC file, zstd: 4.5 KB and 0.26 ms per `multi` episode vs 6.8 KB / 0.82 ms for zstd Parquet
# (numbers and alternatives in FORMAT.md).
ROWS_SUFFIX = "rows.arrow"
ROWS_COMPRESSION = "zstd"
VIDEO_EXT = "mp4"
# Fixed tar header fields make shards byte-identical across runs and machines.
TAR_MTIME = 0  # an int: a float mtime makes tarfile add a 1 KiB PAX header per member
TAR_USER = ""
TAR_GROUP = ""
TAR_MODE = 0o444


EpisodeValue = bool | int | float | str | None  # a per-episode field's value (a JSON scalar)


class ShardFormatError(ValueError):
    """A shard, a sample or the manifest does not follow the lerobot-wds format."""


# ----------------------------------------------------------------------------------------- names


def episode_key(episode_index: int) -> str:
    """WebDataset sample key of an episode: ``ep_000123`` (no dots: webdataset's key ends at one)."""
    return f"{EPISODE_KEY_PREFIX}{episode_index:06d}"


def parse_episode_key(key: str) -> int:
    """Inverse of :func:`episode_key`; raises :class:`ShardFormatError` on anything else."""
    digits = key.removeprefix(EPISODE_KEY_PREFIX)
    if not key.startswith(EPISODE_KEY_PREFIX) or not digits.isdigit():
        raise ShardFormatError(f"sample key {key!r}: not an episode key; expected 'ep_<digits>'")
    return int(digits)


def shard_path(shard_index: int) -> str:
    """Path of a shard relative to the dataset root."""
    return f"{SHARD_DIR}/shard-{shard_index:06d}.tar"


def video_suffix(camera_key: str) -> str:
    """Member suffix (after the sample key) of a camera's segment: ``observation.images.top.mp4``."""
    return f"{camera_key}.{VIDEO_EXT}"


def sample_suffixes(camera_keys: list[str]) -> list[str]:
    """Every member suffix that every sample has, sorted as in the tar."""
    return sorted([META_SUFFIX, ROWS_SUFFIX, *(video_suffix(k) for k in camera_keys)])


def split_member_name(name: str) -> tuple[str, str]:
    """``ep_000001.observation.images.top.mp4`` -> ``("ep_000001", "observation.images.top.mp4")``."""
    key, dot, suffix = name.partition(".")
    if not dot or not suffix:
        raise ShardFormatError(f"tar member {name!r}: no suffix; expected '<key>.<suffix>'")
    return key, suffix


# ------------------------------------------------------------------------------------------ rows


def encode_rows(table: pa.Table) -> bytes:
    """An episode's rows as an Arrow IPC file (zstd), schema metadata dropped."""
    table = table.replace_schema_metadata(None)
    sink = io.BytesIO()
    options = ipc.IpcWriteOptions(compression=ROWS_COMPRESSION)
    with ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue()


# Per row of a feature in the rows member, beyond its values at 8 bytes each: offsets, validity bits,
# an image's path string. Strings have no shape: 64 KiB a row. Plus 1 MiB for schema and padding.
_ROW_SLACK_BYTES = 64
_STRING_ROW_BYTES = 64 << 10
_ROWS_SLACK_BYTES = 1 << 20


def max_rows_bytes(features: dict[str, Any], num_frames: int, where: str) -> int:
    """The most an episode's rows may inflate to, from the features the manifest declares: each
    non-video feature's values at 8 bytes (the widest dtype; an encoded image is bounded by its raw
    size x 8) plus slack. A generous bound, there to refuse a decompression bomb, not to size buffers."""
    per_row = 0
    for key, feature in features.items():
        if not isinstance(feature, dict) or feature.get("dtype") == "video":
            continue
        shape = feature.get("shape") or [1]
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ShardFormatError(f"{where}: feature {key!r} has shape {shape!r}; expected a list of ints")
        values = _STRING_ROW_BYTES if feature.get("dtype") == "string" else 8 * max(math.prod(shape), 1)
        per_row += values + _ROW_SLACK_BYTES
    return num_frames * per_row + _ROWS_SLACK_BYTES


def decode_rows(data: bytes, where: str, *, max_rows: int, max_bytes: int) -> pa.Table:
    """Inverse of :func:`encode_rows`, refusing (before decompressing) more than ``max_rows`` rows or
    buffers that inflate past ``max_bytes`` (:func:`max_rows_bytes`)."""
    try:
        return _ipc.read_bounded(data, max_rows, max_bytes)
    except _ipc.IpcBoundError as exc:
        raise ShardFormatError(f"{where}: rows member refused; {exc}") from exc
    except (pa.ArrowException, OSError) as exc:  # OSError: a codec's error (e.g. corrupt zstd data)
        raise ShardFormatError(f"{where}: rows member is not a readable Arrow IPC file; {exc}") from exc


# ----------------------------------------------------------------------------- JSON validation
# Shared with the conversion's work folder (converter/workdir.py), the other schema on disk.


def json_field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``obj[name]`` if ``obj`` is a JSON object with a ``kind`` there; else :class:`ShardFormatError`."""
    if not isinstance(obj, dict):
        raise ShardFormatError(f"{where}: expected a JSON object; got {type(obj).__name__}")
    if name not in obj:
        raise ShardFormatError(f"{where}: missing field {name!r}")
    value = obj[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ShardFormatError(f"{where}: field {name!r} is {type(value).__name__}; expected {expected}")
    return value


def _optional_float(obj: dict[str, Any], name: str, where: str) -> float | None:
    if obj.get(name) is None:
        return None
    return float(json_field(obj, name, (int, float), where))


def json_loads(data: bytes | str, where: str) -> Any:
    """Parsed JSON; a :class:`ShardFormatError` naming ``where`` if it is not JSON."""
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShardFormatError(f"{where}: not valid JSON; {exc}") from exc


def json_dumps(obj: Any) -> bytes:
    """Compact JSON with sorted keys: the same object always gives the same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


# ------------------------------------------------------------------------------- episode meta


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraSegment:
    """What the reader needs to address one camera's segment of an episode exactly."""

    codec: str  # e.g. "av1", "h264", "hevc"
    time_base: tuple[int, int]  # (numerator, denominator) of the segment's pts unit
    first_pts: int  # pts of the segment's first frame (in time_base units)
    num_frames: int  # frames in the segment == episode length
    from_timestamp: float  # where the episode sat in the source mp4, seconds
    to_timestamp: float
    source_file: str  # source mp4, relative to the source root
    psnr_db: float | None = None  # against the source when re-encoded (--vcodec); None for a stream copy
    # The segment's own stream as written (the source's info.json may say otherwise): FFmpeg's pixel
    # format name and the frame size in pixels. None in shards written before they were recorded.
    pix_fmt: str | None = None
    width: int | None = None
    height: int | None = None

    def stream(self) -> dict[str, Any]:
        """``{"codec", "pix_fmt", "width", "height"}`` of the segment's stream (None where unknown)."""
        return {"codec": self.codec, "pix_fmt": self.pix_fmt, "width": self.width, "height": self.height}

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str) -> CameraSegment:
        time_base = json_field(obj, "time_base", list, where)
        if len(time_base) != 2 or not all(isinstance(v, int) and v > 0 for v in time_base):
            raise ShardFormatError(f"{where}: time_base {time_base!r}; expected [num, den] > 0")
        return cls(
            codec=json_field(obj, "codec", str, where),
            time_base=(time_base[0], time_base[1]),
            first_pts=json_field(obj, "first_pts", int, where),
            num_frames=json_field(obj, "num_frames", int, where),
            from_timestamp=float(json_field(obj, "from_timestamp", (int, float), where)),
            to_timestamp=float(json_field(obj, "to_timestamp", (int, float), where)),
            source_file=json_field(obj, "source_file", str, where),
            psnr_db=_optional_float(obj, "psnr_db", where),
            pix_fmt=json_field(obj, "pix_fmt", str, where) if obj.get("pix_fmt") is not None else None,
            width=json_field(obj, "width", int, where) if obj.get("width") is not None else None,
            height=json_field(obj, "height", int, where) if obj.get("height") is not None else None,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EpisodeMeta:
    """Content of ``<key>.meta.json``: an episode described without its manifest."""

    episode_index: int
    num_frames: int
    tasks: list[str]
    task_indices: list[int]
    cameras: dict[str, CameraSegment]

    def to_json(self) -> bytes:
        obj = asdict(self)
        for camera in obj["cameras"].values():
            camera["time_base"] = list(camera["time_base"])
        return json_dumps(obj)

    @classmethod
    def from_json(cls, data: bytes | str, where: str) -> EpisodeMeta:
        obj = json_loads(data, where)
        cameras = json_field(obj, "cameras", dict, where)
        return cls(
            episode_index=json_field(obj, "episode_index", int, where),
            num_frames=json_field(obj, "num_frames", int, where),
            tasks=list(json_field(obj, "tasks", list, where)),
            task_indices=list(json_field(obj, "task_indices", list, where)),
            cameras={k: CameraSegment.from_json(v, f"{where}: camera {k!r}") for k, v in cameras.items()},
        )


# ------------------------------------------------------------------------------------ manifest


@dataclass(frozen=True, slots=True, kw_only=True)
class EpisodeEntry:
    """Where an episode lives: enough to plan an epoch and to fetch it with one ranged read."""

    episode_index: int
    num_frames: int
    dataset_from_index: int  # LeRobot's global `index` of the episode's first frame
    shard: str  # path of the tar, relative to the dataset root
    offset_bytes: int  # offset of the sample's first tar header inside the shard
    size_bytes: int  # bytes from that header to the end of the sample's last member (padded)
    task_indices: tuple[int, ...]
    # zlib.crc32 of those bytes: checked by the reader on every fetch (None: written before it existed)
    crc32: int | None = None
    # Per-episode scalars the source's meta/episodes parquet records beyond LeRobot's own columns (e.g. a
    # success flag), as (name, value) pairs sorted by name; () when it has none (or before they were kept).
    fields: tuple[tuple[str, EpisodeValue], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardEntry:
    path: str  # relative to the dataset root
    size_bytes: int
    sha256: str
    episodes: tuple[int, ...]  # episode indices, in tar order
    num_frames: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"episodes": list(self.episodes)}

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str) -> ShardEntry:
        return cls(
            path=_inside_root(json_field(obj, "path", str, where), where),
            size_bytes=_at_least(json_field(obj, "size_bytes", int, where), 0, "size_bytes", where),
            sha256=json_field(obj, "sha256", str, where),
            episodes=tuple(_int(i, "episodes", where) for i in json_field(obj, "episodes", list, where)),
            num_frames=json_field(obj, "num_frames", int, where),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceInfo:
    """Where the converted dataset came from (never credentials)."""

    location: str  # local path or Hub repo id
    revision: str | None  # Hub revision (commit sha when known); None for a local folder
    codebase_version: str  # LeRobot's, from info.json

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str) -> SourceInfo:
        return cls(
            location=json_field(obj, "location", str, where),
            revision=json_field(obj, "revision", str, where) if obj.get("revision") is not None else None,
            codebase_version=json_field(obj, "codebase_version", str, where),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedEpisode:
    """A source episode a conversion left out (``--skip-bad-episodes``), and why."""

    episode_index: int
    checks: tuple[str, ...]  # the error-level checks that named it, e.g. ("files.missing",)
    reason: str  # their messages, joined

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str) -> SkippedEpisode:
        return cls(
            episode_index=json_field(obj, "episode_index", int, where),
            checks=tuple(_str(c, "checks", where) for c in json_field(obj, "checks", list, where)),
            reason=json_field(obj, "reason", str, where),
        )


_EPISODE_COLUMNS = (
    "episode_index",
    "num_frames",
    "dataset_from_index",
    "shard_index",
    "offset_bytes",
    "size_bytes",
    "task_indices",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """Content of ``manifest.json``. Episodes are stored column-wise to keep 100k-episode manifests small."""

    format_version: int
    source: SourceInfo
    fps: int
    features: dict[str, Any]  # as in the source's info.json
    camera_keys: list[str]
    options: dict[str, Any]  # the conversion options that shape the bytes
    shards: list[ShardEntry]
    # per camera {"min": .., "mean": ..} PSNR in dB against the source when re-encoded; empty for copies
    psnr_db: dict[str, dict[str, float]] = field(default_factory=dict)
    episodes: list[EpisodeEntry] = field(repr=False)
    # 0 for a one-shot conversion; each incremental update (new source episodes, new shards appended,
    # old shards untouched) adds 1. Absent in manifests written before updates existed: read as 0.
    generation: int = 0
    # Source episodes left out because a check found an error in them (convert --skip-bad-episodes);
    # absent (empty) when none was. An update may convert them once repaired.
    skipped_episodes: list[SkippedEpisode] = field(default_factory=list)
    # Per camera, the distinct streams its segments hold as written ({"codec", "pix_fmt", "width",
    # "height"}: usually one); what the source's info.json says may differ. Empty before it was recorded.
    streams: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return sum(e.num_frames for e in self.episodes)

    @property
    def total_bytes(self) -> int:
        return sum(s.size_bytes for s in self.shards)

    def to_json(self) -> bytes:
        shard_index = {s.path: i for i, s in enumerate(self.shards)}
        columns: dict[str, Any] = {name: [] for name in _EPISODE_COLUMNS}
        for e in self.episodes:
            columns["episode_index"].append(e.episode_index)
            columns["num_frames"].append(e.num_frames)
            columns["dataset_from_index"].append(e.dataset_from_index)
            columns["shard_index"].append(shard_index[e.shard])
            columns["offset_bytes"].append(e.offset_bytes)
            columns["size_bytes"].append(e.size_bytes)
            columns["task_indices"].append(list(e.task_indices))
        if any(e.crc32 is not None for e in self.episodes):
            columns["crc32"] = [e.crc32 for e in self.episodes]
        names = sorted({name for e in self.episodes for name, _ in e.fields})
        if names:
            values = [dict(e.fields) for e in self.episodes]
            columns["fields"] = {name: [v.get(name) for v in values] for name in names}
        obj = {
            "format_version": self.format_version,
            "source": asdict(self.source),
            "fps": self.fps,
            "features": self.features,
            "camera_keys": self.camera_keys,
            "options": self.options,
            "psnr_db": self.psnr_db,
            "generation": self.generation,
            "totals": {"episodes": self.num_episodes, "frames": self.num_frames, "bytes": self.total_bytes},
            "shards": [s.to_dict() for s in self.shards],
            "episodes": columns,
        }
        if self.skipped_episodes:
            obj["skipped_episodes"] = [asdict(s) | {"checks": list(s.checks)} for s in self.skipped_episodes]
        if self.streams:
            obj["streams"] = self.streams
        return json_dumps(obj)  # compact: a 130k-episode manifest stays a few MB

    @classmethod
    def from_json(cls, data: bytes | str, where: str) -> Manifest:
        obj = json_loads(data, where)
        version = json_field(obj, "format_version", int, where)
        if version != FORMAT_VERSION:
            raise ShardFormatError(
                f"{where}: format_version {version}; expected {FORMAT_VERSION}; "
                "convert the dataset again or install the lerobot-wds release that wrote it"
            )
        shards = [
            ShardEntry.from_dict(s, f"{where}: shards[{i}]")
            for i, s in enumerate(json_field(obj, "shards", list, where))
        ]
        return cls(
            format_version=version,
            source=SourceInfo.from_dict(json_field(obj, "source", dict, where), where),
            fps=_at_least(json_field(obj, "fps", int, where), 1, "fps", where),
            features=json_field(obj, "features", dict, where),
            camera_keys=[_str(k, "camera_keys", where) for k in json_field(obj, "camera_keys", list, where)],
            options=json_field(obj, "options", dict, where),
            psnr_db=_psnr_db(obj.get("psnr_db") or {}, where),
            shards=shards,
            episodes=_episodes_from_json(json_field(obj, "episodes", dict, where), shards, where),
            generation=_at_least(json_field(obj, "generation", int, where), 0, "generation", where)
            if "generation" in obj
            else 0,
            skipped_episodes=[
                SkippedEpisode.from_dict(s, f"{where}: skipped_episodes[{i}]")
                for i, s in enumerate(json_field(obj, "skipped_episodes", list, where))
            ]
            if "skipped_episodes" in obj
            else [],
            streams=_streams(obj.get("streams") or {}, where),
        )


def _episodes_from_json(columns: dict[str, Any], shards: list[ShardEntry], where: str) -> list[EpisodeEntry]:
    values = [json_field(columns, name, list, f"{where}: episodes") for name in _EPISODE_COLUMNS]
    crcs = json_field(columns, "crc32", list, f"{where}: episodes") if "crc32" in columns else None
    if len({len(v) for v in [*values, *([crcs] if crcs is not None else [])]}) > 1:
        raise ShardFormatError(f"{where}: episodes columns have different lengths")
    fields = _fields_from_json(columns, len(values[0]), where)
    entries = []
    seen: set[int] = set()
    for position, row in enumerate(zip(*values, strict=True)):
        numbers = zip(row[:6], _EPISODE_COLUMNS[:6], strict=True)
        index, frames, first, shard, offset, size = (_int(value, name, where) for value, name in numbers)
        at = f"{where}: episode {index}"
        crc = crcs[position] if crcs is not None else None
        if crc is not None and (_int(crc, "crc32", at) < 0 or crc >= 1 << 32):
            raise ShardFormatError(f"{at}: crc32 {crc}; expected an int in [0, 2**32)")
        if index in seen:
            raise ShardFormatError(f"{at}: listed twice; expected each episode once")
        seen.add(index)
        for name, value, minimum in [("num_frames", frames, 1), ("dataset_from_index", first, 0),
                                     ("offset_bytes", offset, 0), ("size_bytes", size, 1)]:  # fmt: skip
            _at_least(value, minimum, name, at)
        if not 0 <= shard < len(shards):
            raise ShardFormatError(f"{at} names shard {shard}; have {len(shards)}")
        if offset + size > shards[shard].size_bytes:
            raise ShardFormatError(
                f"{at}: bytes {offset}..{offset + size}; shard {shards[shard].path} has "
                f"{shards[shard].size_bytes} (manifest)"
            )
        tasks = row[6]
        if not isinstance(tasks, list):
            raise ShardFormatError(f"{at}: task_indices is {type(tasks).__name__}; expected a list")
        entries.append(
            EpisodeEntry(
                episode_index=index,
                num_frames=frames,
                dataset_from_index=first,
                shard=shards[shard].path,
                offset_bytes=offset,
                size_bytes=size,
                task_indices=tuple(_int(t, "task_indices", at) for t in tasks),
                crc32=crc,
                fields=fields[position],
            )
        )
    return entries


def _fields_from_json(
    columns: dict[str, Any], num_episodes: int, where: str
) -> list[tuple[tuple[str, EpisodeValue], ...]]:
    """The optional ``episodes.fields`` (``{name: [value per episode]}``) as each episode's pairs."""
    if "fields" not in columns:
        return [()] * num_episodes
    fields = json_field(columns, "fields", dict, f"{where}: episodes")
    pairs: list[list[tuple[str, EpisodeValue]]] = [[] for _ in range(num_episodes)]
    for name in sorted(fields):
        values = json_field(fields, name, list, f"{where}: episodes.fields")
        if len(values) != num_episodes:
            raise ShardFormatError(
                f"{where}: episodes.fields[{name!r}] has {len(values)} values; expected {num_episodes}"
            )
        for position, value in enumerate(values):
            if not isinstance(value, bool | int | float | str | None):
                raise ShardFormatError(
                    f"{where}: episodes.fields[{name!r}][{position}] is {type(value).__name__}; "
                    "expected a JSON scalar (bool, number, string or null)"
                )
            if value is not None:
                pairs[position].append((name, value))
    return [tuple(p) for p in pairs]


def _int(value: Any, name: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ShardFormatError(f"{where}: {name} is {type(value).__name__} {value!r}; expected an int")
    return value


def _str(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str):
        raise ShardFormatError(f"{where}: {name} has {type(value).__name__} {value!r}; expected a str")
    return value


def _psnr_db(value: Any, where: str) -> dict[str, dict[str, float]]:
    """``{camera: {"min": dB, "mean": dB}}`` (a JSON object of objects of numbers)."""
    ok = isinstance(value, dict) and all(
        isinstance(v, dict)
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v.values())
        for v in value.values()
    )
    if not ok:
        raise ShardFormatError(f"{where}: psnr_db {str(value)[:80]}; expected {{camera: {{statistic: dB}}}}")
    return {camera: {k: float(x) for k, x in stats.items()} for camera, stats in value.items()}


def _streams(value: Any, where: str) -> dict[str, list[dict[str, Any]]]:
    """``{camera: [{"codec", "pix_fmt", "width", "height"}, ...]}``."""
    ok = isinstance(value, dict) and all(
        isinstance(v, list) and all(isinstance(s, dict) and isinstance(s.get("codec"), str) for s in v)
        for v in value.values()
    )
    if not ok:
        raise ShardFormatError(f"{where}: streams {str(value)[:80]}; expected {{camera: [{{codec: ...}}]}}")
    return value


def _at_least(value: int, minimum: int, name: str, where: str) -> int:
    if value < minimum:
        raise ShardFormatError(f"{where}: {name} is {value}; expected >= {minimum}")
    return value


def _inside_root(path: str, where: str) -> str:
    """A shard path relative to the dataset root that stays inside it (local and remote alike)."""
    parts = path.replace("\\", "/").split("/")
    if not path or path.startswith("/") or "://" in path or ".." in parts or "" in parts or ":" in parts[0]:
        raise ShardFormatError(
            f"{where}: shard path {path!r}; expected a relative path inside the dataset root"
        )
    return path


def read_manifest(
    url: str, storage_options: StorageOptions | None = None, *, retry: storage.RetryPolicy | None = None
) -> Manifest:
    """The manifest of a converted dataset; a clear error if there is none (incomplete conversion).
    Transient failures are retried and the read bounded as a reader's are (``retry``; None: the
    default policy): a hung server fails the dataset's construction instead of holding it."""
    manifest_url = storage.join(url, MANIFEST_NAME)
    try:
        data = storage.read_bytes(manifest_url, storage_options, retry=retry or storage.RetryPolicy())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{storage.redact(url)}: no {MANIFEST_NAME}; expected a finished lerobot-wds conversion "
            "(the manifest is written last: a conversion still running or interrupted has none)"
        ) from None  # fsspec's message is the raw path: for a URL with a password, the password
    return Manifest.from_json(data, storage.redact(manifest_url))


def task_strings(table: pa.Table, where: str) -> dict[int, str]:
    """``task_index -> task`` from LeRobot's ``meta/tasks.parquet`` (tasks are its pandas index)."""
    names = [c for c in ("task", "__index_level_0__") if c in table.column_names]
    if "task_index" not in table.column_names or not names:
        raise ShardFormatError(f"{where}: columns {table.column_names}; expected 'task_index' and 'task'")
    return dict(zip(table["task_index"].to_pylist(), table[names[0]].to_pylist(), strict=True))


# LeRobot returns depth in millimetres; a depth feature whose info says ``depth_unit: "m"`` is scaled
# by this (values and stats alike), as LeRobot 0.6.1 does.
MM_PER_METRE = 1000.0


def is_depth_map(feature: dict[str, Any]) -> bool:
    """LeRobot's marker: ``is_depth_map`` in the feature's ``info`` (or the legacy ``video.*`` keys)."""
    info, video_info = feature.get("info") or {}, feature.get("video_info") or {}
    return bool(
        info.get("is_depth_map") or info.get("video.is_depth_map") or video_info.get("video.is_depth_map")
    )


CHANNEL_NAMES = ("channel", "channels")  # LeRobot's names for the last axis of an (H, W, C) camera shape


def camera_chw(feature: dict[str, Any]) -> tuple[int, int, int] | None:
    """A camera feature's frame shape ``(C, H, W)`` as LeRobot reads its declaration
    (``dataset_to_policy_features``): ``(H, W, C)`` when ``names[2]`` is ``channel(s)``, else already
    ``(C, H, W)`` (ported datasets declare ``[3, 224, 224]``). Without names, the axis of 1, 3 or 4
    channels decides. ``video.height``/``video.width``/``video.channels`` in ``info``, which LeRobot's
    writer reads from the encoded stream, win over the declaration. None when the shape is not 3-d."""
    shape = feature.get("shape")
    if not isinstance(shape, list | tuple) or len(shape) != 3:
        return None
    names = feature.get("names")
    if isinstance(names, list | tuple) and len(names) == 3:
        channels_last = names[2] in CHANNEL_NAMES
    else:
        channels_last = shape[2] in (1, 3, 4) and shape[0] not in (1, 3, 4)
    c, h, w = (shape[2], shape[0], shape[1]) if channels_last else tuple(shape)
    info = feature.get("info") or {}
    return (
        int(info.get("video.channels", c)),
        int(info.get("video.height", h)),
        int(info.get("video.width", w)),
    )
