"""``export``: converted shards -> a LeRobot v3 dataset (the way back), by stream copy.

Episodes are read one at a time with a ranged read each (crc32-checked against the manifest), then
written as LeRobot 0.6's writer lays a dataset out:

- ``data/chunk-XXX/file-YYY.parquet``: the rows, one row group per episode; a new file when the next
  episode would take the current one past ``data_files_size_in_mb`` (LeRobot's rule, estimated from
  the bytes per frame written so far, exactly as its ``_save_episode_data``).
- ``videos/<camera>/chunk-XXX/file-YYY.mp4``: the segments concatenated by stream copy
  (:mod:`.concat`), one file per source file the segments came from (``meta.json``'s ``source_file``),
  renumbered in order: a whole dataset written by LeRobot gets its own layout back, and
  ``from_timestamp``/``to_timestamp`` are the same float sums LeRobot's writer records.
- ``meta/episodes/chunk-000/file-000.parquet``: the episode table, with each episode's ``stats/*``
  columns taken from the source's episode table that the converter copies beside the shards (a
  conversion without that table gives none; LeRobot's loader does not need them).
- ``meta/info.json`` (the source's, with totals and splits for what was exported), ``meta/stats.json``
  and ``meta/tasks.parquet`` (the source's, copied as the converter copied them).

A conversion of some episodes only (``--episodes``) is exported with episodes renumbered 0..N-1 and
``index`` made contiguous, because LeRobot addresses its episode table by position.
Files are staged in a local folder and published at the end, ``meta/info.json`` last.
"""

from __future__ import annotations

import json
import logging
import posixpath
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .. import format as fmt
from .. import storage
from ..sample import EpisodeSample, entry_problems, parse_sample, read_sample
from .lerobot_writer import LeRobotWriter, episode_table

logger = logging.getLogger(__name__)

INFO_PATH = "meta/info.json"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportConfig:
    """Options of :func:`export`."""

    overwrite: bool = False  # replace a LeRobot dataset already at the destination
    # for the destination's and the source's fsspec filesystems; repr=False keeps credentials out of logs
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    source_storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportProgress:
    """Cumulative progress, reported after each episode."""

    num_episodes: int
    num_frames: int
    bytes_read: int  # shard bytes read so far
    total_episodes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportResult:
    dest: str
    num_episodes: int
    num_frames: int
    bytes_written: int
    elapsed_s: float
    renumbered: bool  # episodes renumbered 0..N-1 (a conversion of some episodes only)


def export(
    url: str,
    dest: str,
    config: ExportConfig | None = None,
    *,
    on_progress: Callable[[ExportProgress], None] | None = None,
) -> ExportResult:
    """Write a LeRobot v3 dataset at ``dest`` from the converted shards at ``url``.

    Args:
        url: a converted dataset (local folder or fsspec URL).
        dest: a local folder or any fsspec URL; LeRobot's ``LeRobotDataset(repo_id, root=dest)`` loads it.
        config: see :class:`ExportConfig`.
        on_progress: called after each episode with cumulative :class:`ExportProgress`.

    Example:
        >>> from lerobot_wds.converter.export import export
        >>> export("/tmp/tiny-wds", "/tmp/tiny-lerobot").num_episodes
        6
    """
    config = config or ExportConfig()
    started = time.perf_counter()
    manifest = fmt.read_manifest(url, config.source_storage_options)
    meta = _read_meta_files(url, config.source_storage_options)
    info = fmt.json_loads(meta[INFO_PATH], storage.join(url, INFO_PATH))
    _check_destination(dest, config)
    renumber = _needs_renumbering(manifest)
    # a local DEST is staged beside it (publishing is then a rename); a remote one in the temp folder
    parent = Path(dest).expanduser().resolve().parent if "://" not in dest else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".lerobot-wds-export-", dir=parent))
    try:
        writer = LeRobotWriter(staging, info, manifest.camera_keys)
        try:
            _write_episodes(url, manifest, writer, renumber, config, on_progress)
        finally:
            writer.close()
        stats = _episode_stats(url, manifest, config.source_storage_options)
        totals = {"num_episodes": manifest.num_episodes, "num_frames": manifest.num_frames}
        _write_meta(staging, info, meta, writer, stats, **totals)
        bytes_written = _publish(staging, dest, config)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(
        dest=dest,
        num_episodes=manifest.num_episodes,
        num_frames=manifest.num_frames,
        bytes_written=bytes_written,
        elapsed_s=time.perf_counter() - started,
        renumbered=renumber,
    )


def _read_meta_files(url: str, opts: Mapping[str, Any]) -> dict[str, bytes]:
    meta = {}
    for name in fmt.META_FILES:
        try:
            meta[name] = storage.read_bytes(storage.join(url, name), opts)
        except FileNotFoundError as exc:
            exc.add_note(f"{url}: the converter copies {name} beside the shards; export needs it")
            raise
    return meta


def _episode_stats(url: str, manifest: fmt.Manifest, opts: Mapping[str, Any]) -> pa.Table | None:
    """The ``stats/*`` columns of the exported episodes, in export order, from the source's episode
    table beside the shards; None (logged) when it is not there."""
    fs, root = storage.url_to_fs(url, opts)
    files = sorted(fs.glob(posixpath.join(root, fmt.EPISODES_META_GLOB)))
    tables = []
    for path in files:
        table = pq.read_table(pa.BufferReader(fs.cat_file(path)))
        tables.append(
            table.select([c for c in table.column_names if c == "episode_index" or c.startswith("stats/")])
        )
    table = pa.concat_tables(tables, promote_options="default") if tables else None
    if table is None or table.num_columns == 1:
        logger.warning(
            "%s: no per-episode stats beside the shards; the export's episode table has none",
            storage.redact(url),
        )
        return None
    rows = {index: row for row, index in enumerate(table["episode_index"].to_pylist())}
    missing = [e.episode_index for e in manifest.episodes if e.episode_index not in rows]
    if missing:
        raise fmt.ShardFormatError(
            f"{url}: {fmt.EPISODES_META_GLOB} lacks episodes {missing[:10]}; expected every converted episode"
        )
    taken = table.take(pa.array([rows[e.episode_index] for e in manifest.episodes], pa.int64()))
    return taken.drop_columns(["episode_index"])


def _check_destination(dest: str, config: ExportConfig) -> None:
    if storage.exists(storage.join(dest, INFO_PATH), config.storage_options):
        if not config.overwrite:
            raise ValueError(
                f"{dest}: already holds a LeRobot dataset ({INFO_PATH}); "
                "choose another destination or pass --overwrite"
            )
        for name in ("meta", "data", "videos"):
            storage.remove(storage.join(dest, name), config.storage_options, recursive=True)


def _needs_renumbering(manifest: fmt.Manifest) -> bool:
    """True unless the episodes are 0..N-1 with contiguous ``index`` from 0, as LeRobot addresses them."""
    expected_from = 0
    for position, entry in enumerate(manifest.episodes):
        if entry.episode_index != position or entry.dataset_from_index != expected_from:
            return True
        expected_from += entry.num_frames
    return False


def _write_episodes(
    url: str,
    manifest: fmt.Manifest,
    writer: LeRobotWriter,
    renumber: bool,
    config: ExportConfig,
    on_progress: Callable[[ExportProgress], None] | None,
) -> None:
    num_frames = bytes_read = 0
    for position, entry in enumerate(manifest.episodes):
        sample = _read_episode(url, manifest, entry, config.source_storage_options)
        rows = _renumbered(sample.rows, position, num_frames) if renumber else sample.rows
        writer.add(sample, rows, episode_index=position, dataset_from_index=num_frames)
        num_frames += entry.num_frames
        bytes_read += entry.size_bytes
        if on_progress is not None:
            on_progress(
                ExportProgress(
                    num_episodes=position + 1,
                    num_frames=num_frames,
                    bytes_read=bytes_read,
                    total_episodes=manifest.num_episodes,
                )
            )


def _read_episode(
    url: str, manifest: fmt.Manifest, entry: fmt.EpisodeEntry, opts: Mapping[str, Any]
) -> EpisodeSample:
    """One episode's sample by a ranged read, checked like the reader checks it (crc32, members, counts)."""
    shard_url = storage.join(url, entry.shard)
    where = f"{shard_url}: episode {entry.episode_index} ({fmt.episode_key(entry.episode_index)})"
    end = entry.offset_bytes + entry.size_bytes
    data = storage.read_range(shard_url, opts, start=entry.offset_bytes, end=end)
    if entry.crc32 is not None and (crc := zlib.crc32(data)) != entry.crc32:
        raise fmt.ShardFormatError(
            f"{where}: bytes {entry.offset_bytes}..{end} have crc32 {crc:08x}; manifest says "
            f"{entry.crc32:08x} (corrupt or rewritten shard)"
        )
    members = read_sample(data, fmt.episode_key(entry.episode_index), where)
    bound = fmt.max_rows_bytes(manifest.features, entry.num_frames, where)
    sample = parse_sample(
        members, manifest.camera_keys, where, max_rows=entry.num_frames, max_rows_bytes=bound
    )
    problems = entry_problems(sample, entry)
    if problems:
        raise fmt.ShardFormatError(f"{where}: {'; '.join(problems)}")
    return sample


def _renumbered(rows: pa.Table, episode_index: int, dataset_from_index: int) -> pa.Table:
    """Rows with ``episode_index`` and ``index`` as LeRobot expects them after renumbering."""
    values = {
        "episode_index": [episode_index] * rows.num_rows,
        "index": list(range(dataset_from_index, dataset_from_index + rows.num_rows)),
    }
    for name, column in values.items():
        if name in rows.column_names:
            position = rows.column_names.index(name)
            field_ = rows.schema.field(name)
            rows = rows.set_column(position, field_, pa.array(column, type=field_.type))
    return rows


# ------------------------------------------------------------------------------------------- meta


def _write_meta(
    root: Path,
    info: dict[str, Any],
    meta: dict[str, bytes],
    writer: LeRobotWriter,
    stats: pa.Table | None,
    *,
    num_episodes: int,
    num_frames: int,
) -> None:
    tasks = pq.read_table(pa.BufferReader(meta["meta/tasks.parquet"]))
    episodes = episode_table(writer.episodes, writer.camera_keys)
    if stats is not None:
        for name in stats.column_names:
            episodes = episodes.append_column(stats.schema.field(name), stats[name])
    episodes = episodes.append_column(
        "meta/episodes/chunk_index", pa.array([0] * episodes.num_rows, pa.int64())
    )
    episodes = episodes.append_column(
        "meta/episodes/file_index", pa.array([0] * episodes.num_rows, pa.int64())
    )
    (root / EPISODES_PATH).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(episodes, root / EPISODES_PATH)
    for name in ("meta/stats.json", "meta/tasks.parquet"):
        (root / name).write_bytes(meta[name])
    info = dict(info)
    info["features"] = _with_streams(info["features"], writer.video_streams)
    info |= {
        "total_episodes": num_episodes,
        "total_frames": num_frames,
        "total_tasks": tasks.num_rows,
        "splits": {"train": f"0:{num_episodes}"},
    }
    (root / INFO_PATH).write_text(json.dumps(info, indent=4))


def _with_streams(features: dict[str, Any], streams: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Features whose ``info`` names the exported streams' codec, pixel format and size, where it named
    others: shards re-encoded with ``--vcodec`` hold h264/hevc where the source had av1, and a source's
    info.json may have said something else than its streams (the shards record what was copied)."""
    features = dict(features)
    names = {
        "codec": "video.codec",
        "pix_fmt": "video.pix_fmt",
        "width": "video.width",
        "height": "video.height",
    }
    for key, stream in streams.items():
        info = features[key].get("info")
        if not isinstance(info, dict):
            continue
        true = {
            names[k]: v for k, v in stream.items() if v is not None and info.get(names[k]) not in (None, v)
        }
        if true:
            features[key] = features[key] | {"info": info | true}
    return features


def _publish(staging: Path, dest: str, config: ExportConfig) -> int:
    """Move every staged file to ``dest`` (``meta/info.json`` last); return the bytes published."""
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(staging).as_posix() == INFO_PATH)
    total = 0
    for path in files:
        total += path.stat().st_size
        storage.move_file(
            str(path), storage.join(dest, path.relative_to(staging).as_posix()), config.storage_options
        )
    return total
