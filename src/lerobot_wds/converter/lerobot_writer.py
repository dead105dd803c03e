"""Write a LeRobot v3 dataset's data, videos and episode table as LeRobot 0.6's writer lays them out.

Used by :mod:`.export`. Data parquet: one row group per episode, a new file when the next episode would
take the current one past ``data_files_size_in_mb`` (the rule of LeRobot's ``_save_episode_data``, on the
bytes written so far). Videos: segments concatenated by stream copy (:mod:`.concat`), a new file
whenever the segments' source file changes, numbered in order (see ``export``'s module docstring); or,
with ``video_files_size_mb``, LeRobot's recording rule: a new file when the current one plus the next
segment would reach that size (``_save_episode_video``; the current size is the sum of its segments'
bytes, within a container header of the file on disk LeRobot measures).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..sample import EpisodeSample
from .concat import ConcatenatedVideo

# LeRobot 0.6's defaults (lerobot.datasets.utils), for an info.json that does not name them.
DEFAULT_CHUNKS_SIZE = 1000
DEFAULT_DATA_FILES_SIZE_MB = 100.0


class LeRobotWriter:
    """Data parquet files, concatenated videos and the episode table, written into a staging folder."""

    def __init__(
        self,
        root: Path,
        info: dict[str, Any],
        camera_keys: list[str],
        *,
        video_files_size_mb: float | None = None,  # None: a file per source file (export)
    ) -> None:
        self.root = root
        self.video_files_size_mb = video_files_size_mb
        self.info = info
        self.camera_keys = camera_keys
        self.chunks_size = int(info.get("chunks_size", DEFAULT_CHUNKS_SIZE))
        self.data_files_size_mb = float(info.get("data_files_size_in_mb", DEFAULT_DATA_FILES_SIZE_MB))
        self._data: _DataFile | None = None
        self._videos: dict[str, tuple[str, ConcatenatedVideo, tuple[int, int]]] = {}
        self.episodes: dict[str, list[Any]] = {}  # the episode table, column-wise
        # per camera, the last segment's stream as written ({"codec", "pix_fmt", "width", "height"})
        self.video_streams: dict[str, dict[str, Any]] = {}

    def add(
        self, sample: EpisodeSample, rows: pa.Table, *, episode_index: int, dataset_from_index: int
    ) -> None:
        data_chunk, data_file = self._write_rows(rows)
        record: dict[str, Any] = {
            "episode_index": episode_index,
            "tasks": list(sample.meta.tasks),
            "length": rows.num_rows,
            "data/chunk_index": data_chunk,
            "data/file_index": data_file,
            "dataset_from_index": dataset_from_index,
            "dataset_to_index": dataset_from_index + rows.num_rows,
        }
        for camera_key in self.camera_keys:
            segment = sample.meta.cameras[camera_key]
            where = f"episode {sample.meta.episode_index} camera {camera_key!r}"
            video_bytes = sample.videos[camera_key]
            (chunk_index, file_index), video = self._video(camera_key, segment.source_file, len(video_bytes))
            from_timestamp, to_timestamp = video.append(video_bytes, where)
            self.video_streams[camera_key] = segment.stream()
            record |= {
                f"videos/{camera_key}/chunk_index": chunk_index,
                f"videos/{camera_key}/file_index": file_index,
                f"videos/{camera_key}/from_timestamp": from_timestamp,
                f"videos/{camera_key}/to_timestamp": to_timestamp,
            }
        for name, value in record.items():
            self.episodes.setdefault(name, []).append(value)

    def _write_rows(self, rows: pa.Table) -> tuple[int, int]:
        data = self._data
        if data is None or data.is_full_with(rows.num_rows, self.data_files_size_mb):
            indices = (0, 0) if data is None else _next_indices(data.indices, self.chunks_size)
            if data is not None:
                data.close()
            path = self.root / self.info["data_path"].format(chunk_index=indices[0], file_index=indices[1])
            data = self._data = _DataFile(path, indices, rows.schema)
        data.write(rows)
        return data.indices

    def _video(
        self, camera_key: str, source_file: str, segment_bytes: int
    ) -> tuple[tuple[int, int], ConcatenatedVideo]:
        """The open output of ``camera_key`` for the next segment (a new file on a source file change,
        or past ``video_files_size_mb``)."""
        current = self._videos.get(camera_key)
        if current is not None:
            if self.video_files_size_mb is None:
                starts_new = current[0] != source_file
            else:
                starts_new = (current[1].size_bytes + segment_bytes) / 1024**2 >= self.video_files_size_mb
            if not starts_new:
                return current[2], current[1]
        if current is not None:
            current[1].close()
            indices = _next_indices(current[2], self.chunks_size)
        else:
            indices = (0, 0)
        relative = self.info["video_path"].format(
            video_key=camera_key, chunk_index=indices[0], file_index=indices[1]
        )
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        video = ConcatenatedVideo(path)
        self._videos[camera_key] = (source_file, video, indices)
        return indices, video

    def close(self) -> None:
        if self._data is not None:
            self._data.close()
        for _, video, _ in self._videos.values():
            video.close()


def _next_indices(indices: tuple[int, int], chunks_size: int) -> tuple[int, int]:
    """LeRobot's ``update_chunk_file_indices``: the next file, in the next chunk after ``chunks_size``."""
    chunk_index, file_index = indices
    return (chunk_index + 1, 0) if file_index == chunks_size - 1 else (chunk_index, file_index + 1)


class _DataFile:
    """One data parquet file: snappy with dictionaries, one row group per episode (LeRobot's writer)."""

    def __init__(self, path: Path, indices: tuple[int, int], schema: pa.Schema) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.indices = indices
        self.num_frames = 0
        self._writer = pq.ParquetWriter(path, schema=schema, compression="snappy", use_dictionary=True)

    def write(self, rows: pa.Table) -> None:
        self._writer.write_table(rows, row_group_size=max(rows.num_rows, 1))
        self.num_frames += rows.num_rows

    def is_full_with(self, num_frames: int, limit_mb: float) -> bool:
        """LeRobot's rollover test: size so far plus this episode at the bytes per frame so far."""
        size_mb = self.path.stat().st_size / (1024**2)
        per_frame_mb = size_mb / self.num_frames if self.num_frames > 0 else 0.0
        return size_mb + per_frame_mb * num_frames >= limit_mb

    def close(self) -> None:
        self._writer.close()


def episode_table(columns: dict[str, list[Any]], camera_keys: list[str]) -> pa.Table:
    """The episode table in LeRobot's column order and types (int64 indices, float64 timestamps)."""
    types: dict[str, pa.DataType] = {
        "episode_index": pa.int64(),
        "tasks": pa.list_(pa.string()),
        "length": pa.int64(),
        "data/chunk_index": pa.int64(),
        "data/file_index": pa.int64(),
        "dataset_from_index": pa.int64(),
        "dataset_to_index": pa.int64(),
    }
    for key in camera_keys:
        types |= {
            f"videos/{key}/chunk_index": pa.int64(),
            f"videos/{key}/file_index": pa.int64(),
            f"videos/{key}/from_timestamp": pa.float64(),
            f"videos/{key}/to_timestamp": pa.float64(),
        }
    return pa.table({name: pa.array(columns.get(name, []), type=kind) for name, kind in types.items()})
