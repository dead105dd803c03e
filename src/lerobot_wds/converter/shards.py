"""Write one shard: its episodes' rows and video segments as WebDataset samples in a tar."""

from __future__ import annotations

import io
import os
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import format as fmt
from .. import storage
from ..storage import RangedFile
from .plan import ShardPlan
from .reencode import reencode
from .segment import Segment, SegmentCutter
from .source import LeRobotSource, SourceEpisode
from .workdir import WrittenShard

# Called after each episode with (episode_index, num_frames, shard-member bytes).
EpisodeCallback = Callable[[int, int, int], None]


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
        _check_frames_and_timestamps(rows, episode, f"{self.source.location}: {episode.data_file}")
        return rows

    def _read(self, relative: str) -> pa.Table:
        file = self.source.file(relative)
        try:
            parquet = pq.ParquetFile(file, metadata=_footer(file) if isinstance(file, RangedFile) else None)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(f"{self.source.location}: cannot read {relative}; {exc}") from exc
        names = parquet.schema_arrow.names
        missing = [c for c in self.source.data_columns if c not in names]
        if missing:
            raise ValueError(
                f"{self.source.location}: {relative} lacks columns {missing}; "
                "expected every non-video feature declared in meta/info.json"
            )
        # Row-group statistics on episode_index skip the episodes of other shards (LeRobot writes one
        # row group per episode): a remote file is read by the byte ranges of the wanted column chunks.
        groups = _row_groups(parquet.metadata, self._wanted)
        if isinstance(file, RangedFile):
            file.plan(_chunk_ranges(parquet.metadata, groups, self.source.data_columns))
        table = parquet.read_row_groups(groups, columns=self.source.data_columns)
        if isinstance(file, RangedFile):
            file.close()  # the table holds copies: let go of the fetched ranges
        return table.filter(
            pc.is_in(table["episode_index"], pa.array(sorted(self._wanted), table["episode_index"].type))
        )


def _close_cutter(cutter: SegmentCutter) -> None:
    """Close the cutter's demuxer and a remote file's held bytes (its last range: up to 16 MiB)."""
    cutter.close()
    if isinstance(cutter.file, RangedFile):
        cutter.file.close()


def _footer(file: RangedFile) -> pq.FileMetaData:
    """A parquet file's metadata from its footer alone (two small ranged reads): pyarrow's own opening
    reads the last 64 KiB, which is the whole of a small file."""
    file.seek(-8, io.SEEK_END)
    tail = file.read(8)
    if tail[4:] != b"PAR1":
        raise pa.ArrowInvalid(f"not a parquet file: ends with {tail[4:]!r}; expected b'PAR1'")
    length = int.from_bytes(tail[:4], "little")
    file.seek(-8 - length, io.SEEK_END)
    return pq.read_metadata(pa.py_buffer(file.read(length + 8)))


def _row_groups(metadata: pq.FileMetaData, episodes: set[int]) -> list[int]:
    """The row groups that may hold ``episodes`` by their ``episode_index`` statistics (all without)."""
    column = metadata.schema.to_arrow_schema().get_field_index("episode_index")
    groups = []
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(column).statistics if column >= 0 else None
        if stats is None or not stats.has_min_max or any(stats.min <= e <= stats.max for e in episodes):
            groups.append(group)
    return groups


# Column chunks this close are fetched in one GET with the gap between them (skipped columns, an
# unwanted row group): fewer requests cost a few bytes.
_CHUNK_GAP_BYTES = 64 << 10


def _chunk_ranges(metadata: pq.FileMetaData, groups: list[int], columns: list[str]) -> list[tuple[int, int]]:
    """Byte ranges of the column chunks of ``columns`` in ``groups``, adjacent ones merged."""
    wanted = set(columns)
    ranges: list[tuple[int, int]] = []
    for group in groups:
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            if chunk.path_in_schema.split(".")[0] not in wanted:
                continue
            offsets = (chunk.dictionary_page_offset, chunk.data_page_offset)
            start = min(o for o in offsets if o is not None and o > 0)
            end = start + chunk.total_compressed_size
            if ranges and start <= ranges[-1][1] + _CHUNK_GAP_BYTES:
                ranges[-1] = (ranges[-1][0], max(end, ranges[-1][1]))
            else:
                ranges.append((start, end))
    return ranges


def _check_frames_and_timestamps(rows: pa.Table, episode: SourceEpisode, where: str) -> None:
    """An episode's rows in frame order (``frame_index`` 0..length-1) with increasing ``timestamp``s:
    otherwise one error naming the first bad row. Timestamps off the 1/fps grid are kept: recordings
    jitter, LeRobot 0.6 loads them, and frames are addressed by index (``round(t * fps)``)."""
    name = f"{where}: episode {episode.episode_index}"
    if "frame_index" in rows.column_names:
        frames = rows["frame_index"].to_numpy()
        wrong = np.flatnonzero(frames != np.arange(len(frames)))
        if wrong.size:
            row = int(wrong[0])
            raise ValueError(
                f"{name}: row {row} has frame_index {int(frames[row])}; expected {row} (rows in frame order, "
                "frame_index from 0)"
            )
    if "timestamp" in rows.column_names and rows.num_rows > 1:
        timestamps = rows["timestamp"].to_numpy()
        wrong = np.flatnonzero(np.diff(timestamps) <= 0)
        if wrong.size:
            row = int(wrong[0])
            raise ValueError(
                f"{name}: timestamp goes from {timestamps[row]} to {timestamps[row + 1]} between frames "
                f"{row} and {row + 1}; expected increasing timestamps"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoOptions:
    """How camera segments are written: stream copy (default) or re-encoded once per episode."""

    vcodec: str = "copy"  # one of reencode.VCODECS
    crf: int = 23  # constant quality for re-encoding; x264's default


def write_shard(
    source: LeRobotSource,
    plan: ShardPlan,
    local_path: Path,
    on_episode: EpisodeCallback | None = None,
    video: VideoOptions | None = None,
) -> WrittenShard:
    """Write ``plan``'s episodes to ``local_path`` (a local tar) and return its index entries."""
    episodes = source.select(plan.episodes)
    samples = _SampleBuilder(source, episodes, video or VideoOptions())
    entries = []
    try:
        with open(local_path, "wb") as stream, tarfile.open(fileobj=stream, mode="w|") as tar:
            for episode in episodes:
                offset = tar.offset
                write_sample(tar, samples.build(episode))
                size = tar.offset - offset
                entries.append(_episode_entry(source, episode, plan.path, offset, size))
                if on_episode is not None:
                    on_episode(episode.episode_index, episode.length, size)
    finally:
        samples.close()
    entries = _with_crc32(local_path, entries)
    shard = fmt.ShardEntry(
        path=plan.path,
        size_bytes=os.path.getsize(local_path),
        sha256=storage.sha256_file(str(local_path)),
        episodes=plan.episodes,
        num_frames=sum(e.length for e in episodes),
    )
    return WrittenShard(shard=shard, episodes=entries, psnr_db=samples.psnr_db, streams=samples.streams)


def write_sample(tar: tarfile.TarFile, sample: dict[str, Any]) -> None:
    """One sample's members (``<__key__>.<part>``, parts in sorted order) with the format's fixed headers.

    The bytes are those of webdataset's ``TarWriter(encoder=False)`` with the same user, group, mode and
    mtime (tests/converter/test_shards.py): that writer is this loop over the same tarfile calls, but
    importing webdataset imports torch, which no converter process needs.
    """
    key = sample["__key__"]
    for part in sorted(k for k in sample if not k.startswith("_")):
        data = sample[part]
        info = tarfile.TarInfo(f"{key}.{part}")
        info.size = len(data)
        info.mtime = fmt.TAR_MTIME
        info.mode = fmt.TAR_MODE
        info.uname = fmt.TAR_USER
        info.gname = fmt.TAR_GROUP
        tar.addfile(info, io.BytesIO(data))


class _SampleBuilder:
    """Builds episode samples, keeping one segment cutter per camera so each source mp4 is read once."""

    def __init__(self, source: LeRobotSource, episodes: list[SourceEpisode], video: VideoOptions) -> None:
        self.source = source
        self.video = video
        self.episodes = episodes
        self.rows = _RowReader(source, episodes)
        self.cutters: dict[str, SegmentCutter] = {}
        self.psnr_db: dict[str, list[float]] = {}
        self.streams: dict[str, list[dict[str, Any]]] = {}  # camera -> distinct streams written

    def close(self) -> None:
        for cutter in self.cutters.values():
            _close_cutter(cutter)

    def build(self, episode: SourceEpisode) -> dict[str, Any]:
        key = fmt.episode_key(episode.episode_index)
        sample: dict[str, Any] = {"__key__": key, fmt.ROWS_SUFFIX: fmt.encode_rows(self.rows.rows(episode))}
        cameras = {}
        for camera_key, span in episode.videos.items():
            where = f"{self.source.location}: episode {episode.episode_index} camera {camera_key!r}"
            segment = self._cutter(camera_key, span.file).cut(
                from_timestamp=span.from_timestamp,
                to_timestamp=span.to_timestamp,
                num_frames=episode.length,
                where=where,
            )
            # Depth maps keep their lossless 12-bit codes: an 8-bit re-encode would destroy them (and the
            # reader decodes depth with PyAV on the CPU, never with NVDEC).
            if self.video.vcodec != "copy" and not fmt.is_depth_map(self.source.features[camera_key]):
                segment = self._reencode(segment, camera_key, where)
            sample[fmt.video_suffix(camera_key)] = segment.data
            cameras[camera_key] = segment.info
            if segment.info.stream() not in self.streams.setdefault(camera_key, []):
                self.streams[camera_key].append(segment.info.stream())
        meta = fmt.EpisodeMeta(
            episode_index=episode.episode_index,
            num_frames=episode.length,
            tasks=list(episode.tasks),
            task_indices=_task_indices(self.source, episode),
            cameras=cameras,
        )
        sample[fmt.META_SUFFIX] = meta.to_json()
        return sample

    def _cutter(self, camera_key: str, relative: str) -> SegmentCutter:
        cutter = self.cutters.get(camera_key)
        if cutter is None or cutter.relative != relative:
            if cutter is not None:
                _close_cutter(cutter)
            file = self.source.file(relative)
            cutter = SegmentCutter(file, relative=relative, fps=self.source.fps)
            if isinstance(file, RangedFile):  # fetch only this shard's episodes' packets, one GET each
                firsts = [
                    (round(ep.videos[camera_key].from_timestamp * self.source.fps), ep.length)
                    for ep in self.episodes
                    if camera_key in ep.videos and ep.videos[camera_key].file == relative
                ]
                file.plan(cutter.byte_ranges((first, first + length) for first, length in firsts))
            self.cutters[camera_key] = cutter
        return cutter

    def _reencode(self, segment: Segment, camera_key: str, where: str) -> Segment:
        done = reencode(
            segment.data, vcodec=self.video.vcodec, crf=self.video.crf, fps=self.source.fps, where=where
        )
        psnr = min(round(done.psnr_db, 2), _PSNR_CAP_DB)
        self.psnr_db.setdefault(camera_key, []).append(psnr)
        info = replace(segment.info, psnr_db=psnr, **_stream_of(done.data))
        return Segment(data=done.data, info=info)


_PSNR_CAP_DB = 100.0  # identical frames give an infinite PSNR, which JSON cannot hold


def _stream_of(data: bytes) -> dict[str, Any]:
    """A re-encoded segment's codec, time base, pixel format and size, as its container says."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        time_base, context = stream.time_base, stream.codec_context
        if time_base is None:
            raise ValueError("re-encoded segment has no time base")
        return {
            "codec": context.codec.canonical_name,
            "time_base": (time_base.numerator, time_base.denominator),
            "pix_fmt": context.format.name if context.format is not None else None,
            "width": context.width,
            "height": context.height,
        }


def _task_indices(source: LeRobotSource, episode: SourceEpisode) -> list[int]:
    unknown = [t for t in episode.tasks if t not in source.task_indices]
    if unknown:
        raise ValueError(
            f"{source.location}: episode {episode.episode_index} tasks {unknown} not in meta/tasks.parquet"
        )
    return [source.task_indices[t] for t in episode.tasks]


def _with_crc32(local_path: Path, entries: list[fmt.EpisodeEntry]) -> list[fmt.EpisodeEntry]:
    """Each episode's crc32 over its byte range of the written shard (what a reader's ranged read gets)."""
    with open(local_path, "rb") as shard:
        checked = []
        for entry in entries:
            shard.seek(entry.offset_bytes)
            checked.append(replace(entry, crc32=zlib.crc32(shard.read(entry.size_bytes))))
    return checked


def _episode_entry(
    source: LeRobotSource, episode: SourceEpisode, shard: str, offset: int, size: int
) -> fmt.EpisodeEntry:
    return fmt.EpisodeEntry(
        episode_index=episode.episode_index,
        num_frames=episode.length,
        dataset_from_index=episode.dataset_from_index,
        shard=shard,
        offset_bytes=offset,
        size_bytes=size,
        task_indices=tuple(_task_indices(source, episode)),
        fields=source.episode_fields.get(episode.episode_index, ()),
    )
