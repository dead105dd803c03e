"""The conversion's work folder: its layout and the schema of its files, read and written here only.

``<dest>/_lerobot_wds_work/`` exists while a conversion runs (or after one was killed) and is removed
once the manifest is written. It is what lets a rerun resume::

    plan.json                   # what is being converted: source, shaping options, shard plan
    source/meta/info.json       # the source's meta files, copied when the plan is made (finalize
                                # publishes them: it needs nothing but the destination)
    index/shard-000000.json     # a finished shard's index: its entry, its episodes' entries, PSNR
    staging/                    # local destinations only: shards being written (renamed when done)
    datatrove/                  # datatrove's logging dir; its completion markers (see executor.py)

Like ``manifest.json``, the JSON files carry a version and are validated when read: a malformed or
foreign file raises :class:`~lerobot_wds.format.ShardFormatError` naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import format as fmt
from .. import storage
from ..format import ShardFormatError, json_dumps, json_field, json_loads
from .plan import ShardPlan

WORK_DIR = "_lerobot_wds_work"  # beside the shards until the manifest is written; removed after
# Version of plan.json and index/*.json. A work folder of another version is refused, not resumed:
# it only ever holds an interrupted run, and --overwrite starts that over.
WORK_VERSION = 3  # 2: episodes carry crc32; 3: plan.json carries what finalize needs (fps, features, ...)
_PLAN_NAME = "plan.json"


def work_url(dest: str) -> str:
    return storage.join(dest, WORK_DIR)


def plan_url(dest: str) -> str:
    return storage.join(dest, WORK_DIR, _PLAN_NAME)


def index_url(dest: str, shard_index: int) -> str:
    """Where a finished shard's index waits until the manifest is written."""
    return storage.join(dest, WORK_DIR, "index", f"shard-{shard_index:06d}.json")


def staging_url(dest: str) -> str:
    """Local shards being written: beside a local destination, so that publishing one is a rename."""
    return storage.join(dest, WORK_DIR, "staging")


def source_meta_url(dest: str, name: str) -> str:
    """The copy of a source meta file (``meta/info.json``) that finalize publishes."""
    return storage.join(dest, WORK_DIR, "source", name)


def datatrove_url(dest: str) -> str:
    """datatrove's logging folder (its own layout; the completion markers are in executor.py)."""
    return storage.join(dest, WORK_DIR, "datatrove")


def _check_version(obj: Any, where: str) -> None:
    version = json_field(obj, "work_version", int, where)
    if version != WORK_VERSION:
        raise ShardFormatError(
            f"{where}: work_version {version}; expected {WORK_VERSION} (an interrupted conversion by another "
            "lerobot-wds release); pass --overwrite to start over"
        )


# ------------------------------------------------------------------------------------ plan.json


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkPlan:
    """Content of ``plan.json``: what a conversion writes, so that a rerun resumes only the same one."""

    format_version: int  # of the shards being written
    source: fmt.SourceInfo
    options: dict[str, Any]  # ConvertConfig.shaping_options()
    shards: tuple[ShardPlan, ...]  # the shards this conversion writes
    # What the manifest says besides shards and episodes (finalize builds it from the work folder alone)
    fps: int
    features: dict[str, Any]
    camera_keys: list[str]
    # 0 for a first conversion; an update of a destination whose manifest has generation g writes g + 1
    # and keeps that manifest's shards (listed first in the new one)
    generation: int = 0
    # source episodes left out by --skip-bad-episodes (the manifest lists them)
    skipped_episodes: tuple[fmt.SkippedEpisode, ...] = ()

    def to_json(self) -> bytes:
        return json_dumps(
            {
                "skipped_episodes": [asdict(s) | {"checks": list(s.checks)} for s in self.skipped_episodes],
                "work_version": WORK_VERSION,
                "format_version": self.format_version,
                "source": asdict(self.source),
                "options": self.options,
                "fps": self.fps,
                "features": self.features,
                "camera_keys": self.camera_keys,
                "generation": self.generation,
                "shards": [
                    {"shard_index": p.shard_index, "path": p.path, "episodes": list(p.episodes)}
                    for p in self.shards
                ],
            }
        )

    @classmethod
    def from_json(cls, data: bytes | str, where: str) -> WorkPlan:
        obj = json_loads(data, where)
        _check_version(obj, where)
        version = json_field(obj, "format_version", int, where)
        if version != fmt.FORMAT_VERSION:
            raise ShardFormatError(
                f"{where}: format_version {version}; expected {fmt.FORMAT_VERSION}; "
                "pass --overwrite to start over"
            )
        shards = json_field(obj, "shards", list, where)
        return cls(
            format_version=version,
            source=fmt.SourceInfo.from_dict(json_field(obj, "source", dict, where), f"{where}: source"),
            options=json_field(obj, "options", dict, where),
            shards=tuple(_shard_plan(s, f"{where}: shards[{i}]") for i, s in enumerate(shards)),
            fps=json_field(obj, "fps", int, where),
            features=json_field(obj, "features", dict, where),
            camera_keys=list(json_field(obj, "camera_keys", list, where)),
            generation=json_field(obj, "generation", int, where),
            skipped_episodes=tuple(
                fmt.SkippedEpisode.from_dict(e, f"{where}: skipped_episodes[{i}]")
                for i, e in enumerate(obj.get("skipped_episodes", []))
            ),
        )


def _shard_plan(obj: Any, where: str) -> ShardPlan:
    return ShardPlan(
        shard_index=json_field(obj, "shard_index", int, where),
        path=json_field(obj, "path", str, where),
        episodes=tuple(json_field(obj, "episodes", list, where)),
    )


def read_plan(dest: str, storage_options: Mapping[str, Any]) -> WorkPlan | None:
    """The plan of an interrupted conversion into ``dest``; None if there is none."""
    url = plan_url(dest)
    if not storage.exists(url, storage_options):
        return None
    return WorkPlan.from_json(storage.read_bytes(url, storage_options), url)


def write_plan(dest: str, plan: WorkPlan, storage_options: Mapping[str, Any]) -> None:
    storage.write_bytes(plan.to_json(), plan_url(dest), storage_options)


# ------------------------------------------------------------------------------- index/*.json


@dataclass(frozen=True, slots=True, kw_only=True)
class WrittenShard:
    """Content of ``index/shard-NNNNNN.json``: a finished shard and its episodes' manifest entries."""

    shard: fmt.ShardEntry
    episodes: list[fmt.EpisodeEntry]
    psnr_db: dict[str, list[float]]  # per camera, one value per episode; empty for stream copies
    # per camera, the distinct streams written ({"codec", "pix_fmt", "width", "height"}; manifest's streams)
    streams: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json_dumps(
            {
                "work_version": WORK_VERSION,
                "shard": self.shard.to_dict(),
                "episodes": [_episode_dict(e) for e in self.episodes],
                "psnr_db": self.psnr_db,
                "streams": self.streams,
            }
        )

    @classmethod
    def from_json(cls, data: bytes | str, where: str) -> WrittenShard:
        obj = json_loads(data, where)
        _check_version(obj, where)
        episodes = json_field(obj, "episodes", list, where)
        psnr_db = json_field(obj, "psnr_db", dict, where)
        for camera_key, values in psnr_db.items():
            if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
                raise ShardFormatError(f"{where}: psnr_db[{camera_key!r}] is {values!r}; expected dB values")
        return cls(
            shard=fmt.ShardEntry.from_dict(json_field(obj, "shard", dict, where), f"{where}: shard"),
            episodes=[_episode_entry(e, f"{where}: episodes[{i}]") for i, e in enumerate(episodes)],
            psnr_db={k: [float(v) for v in values] for k, values in psnr_db.items()},
            streams=json_field(obj, "streams", dict, where) if "streams" in obj else {},
        )


def _episode_dict(entry: fmt.EpisodeEntry) -> dict[str, Any]:
    return {
        "episode_index": entry.episode_index,
        "num_frames": entry.num_frames,
        "dataset_from_index": entry.dataset_from_index,
        "shard": entry.shard,
        "offset_bytes": entry.offset_bytes,
        "size_bytes": entry.size_bytes,
        "task_indices": list(entry.task_indices),
        "crc32": entry.crc32,
        "fields": [[name, value] for name, value in entry.fields],
    }


def _episode_entry(obj: Any, where: str) -> fmt.EpisodeEntry:
    return fmt.EpisodeEntry(
        episode_index=json_field(obj, "episode_index", int, where),
        num_frames=json_field(obj, "num_frames", int, where),
        dataset_from_index=json_field(obj, "dataset_from_index", int, where),
        shard=json_field(obj, "shard", str, where),
        offset_bytes=json_field(obj, "offset_bytes", int, where),
        size_bytes=json_field(obj, "size_bytes", int, where),
        task_indices=tuple(json_field(obj, "task_indices", list, where)),
        crc32=json_field(obj, "crc32", int, where),
        fields=tuple((str(name), value) for name, value in obj.get("fields", [])),
    )


def read_index(dest: str, shard_index: int, storage_options: Mapping[str, Any]) -> WrittenShard:
    url = index_url(dest, shard_index)
    return WrittenShard.from_json(storage.read_bytes(url, storage_options), url)


def write_index(
    dest: str, shard_index: int, written: WrittenShard, storage_options: Mapping[str, Any]
) -> None:
    storage.write_bytes(written.to_json(), index_url(dest, shard_index), storage_options)


def indexed_shards(dest: str, storage_options: Mapping[str, Any]) -> set[int]:
    """The shard indices whose index file is in the work folder (one listing, not a request per shard)."""
    fs, path = storage.url_to_fs(storage.join(dest, WORK_DIR, "index"), storage_options)
    if not fs.exists(path):
        return set()
    names = (str(name).rsplit("/", 1)[-1] for name in fs.ls(path, detail=False))
    return {
        int(name.removeprefix("shard-").removesuffix(".json"))
        for name in names
        if name.startswith("shard-") and name.endswith(".json") and name[6:-5].isdigit()
    }


# ------------------------------------------------------------------ published/ (Hub destinations)


def published_url(dest: str, shard_index: int) -> str:
    """A shard committed to a Hub repo and deleted from the staging folder: its sha256 (converter/hub.py)."""
    return storage.join(dest, WORK_DIR, "published", f"shard-{shard_index:06d}.sha256")


def mark_published(dest: str, shard_index: int, sha256: str, storage_options: Mapping[str, Any]) -> None:
    storage.write_bytes(sha256.encode(), published_url(dest, shard_index), storage_options)


def published_sha256(dest: str, shard_index: int, storage_options: Mapping[str, Any]) -> str | None:
    try:
        return storage.read_bytes(published_url(dest, shard_index), storage_options).decode()
    except FileNotFoundError:
        return None


def upload_failed_url(dest: str) -> str:
    """Written by a Hub destination's uploader that stopped: tasks waiting for staging room give up."""
    return storage.join(dest, WORK_DIR, "upload-failed.txt")
