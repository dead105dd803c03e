"""Write one shard: its episodes' rows and video segments as WebDataset samples in a tar."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import webdataset as wds

from .. import format as fmt
from .plan import ShardPlan
from .segment import SegmentCutter
from .source import LeRobotSource, SourceEpisode

# Called after each episode with (episode_index, num_frames, shard-member bytes).
EpisodeCallback = Callable[[int, int, int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class WrittenShard:
    """A finished local shard and the index entries that the manifest needs."""

    shard: fmt.ShardEntry
    episodes: list[fmt.EpisodeEntry]

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "shard": {**_entry_dict(self.shard), "episodes": list(self.shard.episodes)},
                "episodes": [{**_entry_dict(e), "task_indices": list(e.task_indices)} for e in self.episodes],
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> WrittenShard:
        obj = json.loads(data)
        shard = obj["shard"]
        return cls(
            shard=fmt.ShardEntry(**{**shard, "episodes": tuple(shard["episodes"])}),
            episodes=[
                fmt.EpisodeEntry(**{**e, "task_indices": tuple(e["task_indices"])}) for e in obj["episodes"]
            ],
        )


def _entry_dict(entry: Any) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in entry.__slots__}


class _RowReader:
    """Reads each data file once per shard, keeping only the declared feature columns."""

    def __init__(self, source: LeRobotSource, episodes: list[SourceEpisode]) -> None:
        self.source = source
        self._wanted = {ep.episode_index for ep in episodes}
        self._tables: dict[str, pa.Table] = {}

    def rows(self, episode: SourceEpisode) -> pa.Table:
        table = self._tables.get(episode.data_file)
        if table is None:
            table = self._tables[episode.data_file] = self._read(episode.data_file)
        rows = table.filter(pc.equal(table["episode_index"], episode.episode_index))
        if rows.num_rows != episode.length:
            raise ValueError(
                f"{self.source.location}: episode {episode.episode_index} has {rows.num_rows} rows in "
                f"{episode.data_file}; expected {episode.length} (meta/episodes length)"
            )
        return rows

    def _read(self, relative: str) -> pa.Table:
        path = self.source.path(relative)
        try:
            names = pq.read_schema(path).names
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(f"{self.source.location}: cannot read {relative}; {exc}") from exc
        missing = [c for c in self.source.data_columns if c not in names]
        if missing:
            raise ValueError(
                f"{self.source.location}: {relative} lacks columns {missing}; "
                "expected every non-video feature declared in meta/info.json"
            )
        # Row-group statistics on episode_index skip the episodes of other shards.
        return pq.read_table(
            path, columns=self.source.data_columns, filters=[("episode_index", "in", sorted(self._wanted))]
        )


def write_shard(
    source: LeRobotSource, plan: ShardPlan, local_path: Path, on_episode: EpisodeCallback | None = None
) -> WrittenShard:
    """Write ``plan``'s episodes to ``local_path`` (a local tar) and return its index entries."""
    episodes = source.select(plan.episodes)
    rows = _RowReader(source, episodes)
    cutters: dict[str, SegmentCutter] = {}
    entries = []
    try:
        with open(local_path, "wb") as stream:
            writer = wds.TarWriter(
                stream,
                user=fmt.TAR_USER,
                group=fmt.TAR_GROUP,
                mode=fmt.TAR_MODE,
                mtime=fmt.TAR_MTIME,
                encoder=False,
            )
            try:
                for episode in episodes:
                    offset = writer.tarstream.offset
                    writer.write(_sample(source, episode, rows, cutters))
                    size = writer.tarstream.offset - offset
                    entries.append(_episode_entry(source, episode, plan.path, offset, size))
                    if on_episode is not None:
                        on_episode(episode.episode_index, episode.length, size)
            finally:
                writer.close()
    finally:
        for cutter in cutters.values():
            cutter.close()
    shard = fmt.ShardEntry(
        path=plan.path,
        size_bytes=os.path.getsize(local_path),
        sha256=_sha256(local_path),
        episodes=plan.episodes,
        num_frames=sum(e.length for e in episodes),
    )
    return WrittenShard(shard=shard, episodes=entries)


def _sample(
    source: LeRobotSource, episode: SourceEpisode, rows: _RowReader, cutters: dict[str, SegmentCutter]
) -> dict[str, Any]:
    key = fmt.episode_key(episode.episode_index)
    where = f"{source.location}: episode {episode.episode_index}"
    sample: dict[str, Any] = {"__key__": key, fmt.ROWS_SUFFIX: fmt.encode_rows(rows.rows(episode))}
    cameras = {}
    for camera_key, span in episode.videos.items():
        cutter = cutters.get(camera_key)
        if cutter is None or cutter.relative != span.file:
            if cutter is not None:
                cutter.close()
            cutter = cutters[camera_key] = SegmentCutter(
                source.path(span.file), relative=span.file, fps=source.fps
            )
        segment = cutter.cut(
            from_timestamp=span.from_timestamp,
            to_timestamp=span.to_timestamp,
            num_frames=episode.length,
            where=f"{where} camera {camera_key!r}",
        )
        sample[fmt.video_suffix(camera_key)] = segment.data
        cameras[camera_key] = segment.info
    meta = fmt.EpisodeMeta(
        episode_index=episode.episode_index,
        num_frames=episode.length,
        tasks=list(episode.tasks),
        task_indices=_task_indices(source, episode),
        cameras=cameras,
    )
    sample[fmt.META_SUFFIX] = meta.to_json()
    return sample


def _task_indices(source: LeRobotSource, episode: SourceEpisode) -> list[int]:
    unknown = [t for t in episode.tasks if t not in source.task_indices]
    if unknown:
        raise ValueError(
            f"{source.location}: episode {episode.episode_index} tasks {unknown} not in meta/tasks.parquet"
        )
    return [source.task_indices[t] for t in episode.tasks]


def _episode_entry(
    source: LeRobotSource, episode: SourceEpisode, shard: str, offset: int, size: int
) -> fmt.EpisodeEntry:
    return fmt.EpisodeEntry(
        episode_index=episode.episode_index,
        num_frames=episode.length,
        shard=shard,
        offset_bytes=offset,
        size_bytes=size,
        task_indices=tuple(_task_indices(source, episode)),
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()
