"""``verify`` (re-read every byte against the manifest) and ``inspect`` (summarise) a converted dataset."""

from __future__ import annotations

import hashlib
import io
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import av
import pyarrow.parquet as pq

from .. import format as fmt
from .. import storage
from ..meta import read_meta
from ..sample import TarSample, check_members, entry_problems, iter_samples, parse_sample, read_sample


@dataclass(slots=True)
class VerifyReport:
    url: str
    shards_checked: int = 0
    episodes_checked: int = 0
    problems: list[str] = field(default_factory=list)
    psnr_db: dict[str, list[float]] = field(default_factory=dict)  # per camera, from re-encoded segments

    @property
    def ok(self) -> bool:
        return not self.problems


class _HashingReader(io.RawIOBase):
    """Passes reads through while hashing them, so one sequential pass checks sha256 and structure, and
    the crc32 of each episode's byte range (``ranges``: ``(start, end, episode_index)`` sorted by start),
    as the reader checks it on every fetch. Reads stop one byte past ``limit`` (the manifest's size): an
    endless or oversized shard is reported as too long instead of read forever."""

    def __init__(self, raw: IO[bytes], limit: int, ranges: list[tuple[int, int, int]]) -> None:
        self.raw = raw
        self.limit = limit
        self.digest = hashlib.sha256()
        self.size = 0
        self.ranges = ranges
        self.crcs: dict[int, int] = {}  # episode index -> crc32 of its range's bytes read so far
        self._first = 0  # ranges before this one end before the bytes still to come

    def _add_to_crcs(self, data: bytes) -> None:
        start, end = self.size, self.size + len(data)
        while self._first < len(self.ranges) and self.ranges[self._first][1] <= start:
            self._first += 1
        for low, high, episode in self.ranges[self._first :]:
            if low >= end:
                break
            part = data[max(low, start) - start : min(high, end) - start]
            self.crcs[episode] = zlib.crc32(part, self.crcs.get(episode, 0))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(min(len(buffer), self.limit + 1 - self.size))
        buffer[: len(data)] = data
        self.digest.update(data)
        self._add_to_crcs(data)
        self.size += len(data)
        return len(data)

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def verify(
    url: str,
    storage_options: Mapping[str, Any] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Re-read every shard: checksum, tar structure, member sets, offsets, frame and row counts.

    ``on_progress(bytes_checked, total_bytes)`` is called before the first shard and after each one
    (sizes as the manifest lists them).
    """
    manifest = fmt.read_manifest(url, storage_options)
    report = VerifyReport(url=url)
    try:  # the reader refuses a dataset whose meta files it cannot read: so does verify
        read_meta(url, storage_options)
    except (fmt.ShardFormatError, FileNotFoundError) as exc:
        report.problems.append(str(exc))
    entries = {e.episode_index: e for e in manifest.episodes}
    checked_bytes = 0
    if on_progress is not None:
        on_progress(checked_bytes, manifest.total_bytes)
    for shard in manifest.shards:
        _verify_shard(url, manifest, shard, entries, storage_options, report)
        report.shards_checked += 1
        checked_bytes += shard.size_bytes
        if on_progress is not None:
            on_progress(checked_bytes, manifest.total_bytes)
    return report


def _verify_shard(
    url: str,
    manifest: fmt.Manifest,
    shard: fmt.ShardEntry,
    entries: dict[int, fmt.EpisodeEntry],
    storage_options: Mapping[str, Any] | None,
    report: VerifyReport,
) -> None:
    """Stream the shard once, sample by sample: its sha256 is hashed on the way, one sample held at a time."""
    fs, path = storage.url_to_fs(storage.join(url, shard.path), storage_options)
    if not fs.exists(path):
        report.problems.append(f"{shard.path}: missing")
        return
    expected_keys = {fmt.episode_key(i): i for i in shard.episodes}
    found: dict[str, list[str]] = {}  # sample key -> its problems
    unknown: set[str] = set()
    broken: list[str] = []
    checked = sorted((e.offset_bytes, e.offset_bytes + e.size_bytes, e.episode_index)
                     for e in entries.values() if e.shard == shard.path and e.crc32 is not None)  # fmt: skip
    with fs.open(path, "rb") as raw:
        reader = _HashingReader(raw, shard.size_bytes, checked)
        try:
            for sample in iter_samples(reader, shard.path):
                if sample.key not in expected_keys:
                    unknown.add(sample.key)
                elif sample.key in found:
                    found[sample.key].append(f"{shard.path}: sample {sample.key!r} appears twice")
                else:
                    found[sample.key] = _sample_problems(
                        shard.path, sample, expected_keys[sample.key], manifest, entries, report
                    )
        except fmt.ShardFormatError as exc:
            broken.append(str(exc))
        reader.drain()
    report.problems.extend(broken)
    if reader.size > shard.size_bytes:
        report.problems.append(f"{shard.path}: longer than the {shard.size_bytes} bytes the manifest says")
    elif reader.size != shard.size_bytes:
        report.problems.append(f"{shard.path}: {reader.size} bytes; manifest says {shard.size_bytes}")
    sha256 = reader.digest.hexdigest()
    if sha256 != shard.sha256:
        report.problems.append(f"{shard.path}: sha256 {sha256}; manifest says {shard.sha256}")
    for start, end, episode_index in checked:
        crc, expected = reader.crcs.get(episode_index, zlib.crc32(b"")), entries[episode_index].crc32
        if crc != expected:
            report.problems.append(
                f"{shard.path}: episode {episode_index}: bytes {start}..{end} have crc32 {crc:08x}; "
                f"manifest says {expected:08x}"
            )
    report.problems.extend(f"{shard.path}: sample {key!r} is not in the manifest" for key in sorted(unknown))
    for key, episode_index in expected_keys.items():
        if key not in found:
            report.problems.append(f"{shard.path}: episode {episode_index} ({key}) missing")
            continue
        report.problems.extend(found[key])
        report.episodes_checked += 1


def _sample_problems(
    shard_path: str,
    sample: TarSample,
    episode_index: int,
    manifest: fmt.Manifest,
    entries: dict[int, fmt.EpisodeEntry],
    report: VerifyReport,
) -> list[str]:
    where = f"{shard_path}: episode {episode_index}"
    entry = entries.get(episode_index)
    if entry is None:
        return [f"{where}: in the shard's episode list but not in the manifest's episodes"]
    problems = []
    if entry.offset_bytes != sample.offset_bytes:
        problems.append(f"{where}: at byte {sample.offset_bytes}; manifest says {entry.offset_bytes}")
    try:
        check_members(sample.members, manifest.camera_keys, where)
    except fmt.ShardFormatError as exc:
        return [*problems, str(exc)]
    try:
        max_bytes = fmt.max_rows_bytes(manifest.features, entry.num_frames, where)
        parsed = parse_sample(
            sample.members, manifest.camera_keys, where, max_rows=entry.num_frames, max_rows_bytes=max_bytes
        )
        problems.extend(f"{where}: {p}" for p in entry_problems(parsed, entry))
        for camera_key, segment in parsed.meta.cameras.items():
            if segment.psnr_db is not None:
                report.psnr_db.setdefault(camera_key, []).append(segment.psnr_db)
    except fmt.ShardFormatError as exc:
        problems.append(str(exc))
    for camera_key in manifest.camera_keys:  # counted even when meta.json or the rows are broken
        frames = count_video_frames(sample.members[fmt.video_suffix(camera_key)])
        if frames != entry.num_frames:
            problems.append(
                f"{where}: camera {camera_key!r} has {frames} frames; manifest says {entry.num_frames}"
            )
    return problems


def count_video_frames(data: bytes) -> int:
    """Frames (video packets) in an mp4 held in memory; -1 if it cannot be demuxed."""
    try:
        with av.open(io.BytesIO(data), "r") as container:
            return sum(p.size > 0 for p in container.demux(video=0))
    except (av.error.FFmpegError, IndexError):
        return -1


def inspect_dataset(url: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-able summary of a converted dataset, from its manifest and LeRobot's tasks beside it.

    Keys: ``episodes``, ``frames``, ``hours``, ``shards``, ``bytes``, ``cameras`` (key -> codec,
    height, width, depth), ``tasks`` (task index, task, episodes), and the conversion's provenance.
    """
    manifest = fmt.read_manifest(url, storage_options)
    frames = [e.num_frames for e in manifest.episodes]
    shard_sizes = [s.size_bytes for s in manifest.shards]
    return {
        "url": url,
        "format_version": manifest.format_version,
        "generation": manifest.generation,
        "source": f"{manifest.source.location}@{manifest.source.revision or 'local'}",
        "codebase_version": manifest.source.codebase_version,
        "fps": manifest.fps,
        "episodes": manifest.num_episodes,
        "frames": manifest.num_frames,
        "hours": round(manifest.num_frames / manifest.fps / 3600, 4),
        "episode_frames_min_mean_max": [min(frames), round(sum(frames) / len(frames), 1), max(frames)]
        if frames
        else [],
        "shards": len(manifest.shards),
        "bytes": manifest.total_bytes,
        "shard_bytes_min_max": [min(shard_sizes), max(shard_sizes)] if shard_sizes else [],
        "cameras": _camera_summaries(url, manifest, storage_options),
        "tasks": _task_summary(url, manifest, storage_options),
        "options": manifest.options,
        "psnr_db_vs_source": manifest.psnr_db or "stream copy: pixel-identical to the source",
        "skipped_episodes": [
            {"episode_index": s.episode_index, "checks": list(s.checks), "reason": s.reason}
            for s in manifest.skipped_episodes
        ],
    }


def _camera_summaries(
    url: str, manifest: fmt.Manifest, storage_options: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """Each camera's summary (:func:`camera_summary`). A manifest written before ``streams`` existed whose
    info.json lacks ``video.*`` (datasets ported by other tools) gets codec and size from the streams of
    the first episode: its one ranged read (a declared shape may be channel-first or stale)."""
    first: dict[str, tuple[str, int, int]] = {}
    summaries = {}
    for key in manifest.camera_keys:
        info = manifest.features[key].get("info") or {}
        summary = camera_summary(manifest, key)
        if key not in manifest.streams and not all(
            f"video.{n}" in info for n in ("codec", "height", "width")
        ):
            first = first or _first_episode_streams(url, manifest, storage_options)
            if key in first:
                codec, height, width = first[key]
                vcodec = manifest.options.get("vcodec", "copy")
                summary |= {"codec": codec if vcodec == "copy" or summary["depth"] else vcodec,
                            "height": height, "width": width}  # fmt: skip
        summaries[key] = summary
    return summaries


def _first_episode_streams(
    url: str, manifest: fmt.Manifest, storage_options: Mapping[str, Any] | None
) -> dict[str, tuple[str, int, int]]:
    """Camera key -> (codec, height, width) of the first episode's segments (none without episodes)."""
    if not manifest.episodes:
        return {}
    entry = manifest.episodes[0]
    shard_url = storage.join(url, entry.shard)
    where = f"{storage.redact(shard_url)}: episode {entry.episode_index}"
    end = entry.offset_bytes + entry.size_bytes
    data = storage.read_range(shard_url, storage_options, start=entry.offset_bytes, end=end)
    members = read_sample(data, fmt.episode_key(entry.episode_index), where)
    bound = fmt.max_rows_bytes(manifest.features, entry.num_frames, where)
    sample = parse_sample(
        members, manifest.camera_keys, where, max_rows=entry.num_frames, max_rows_bytes=bound
    )
    streams = {}
    for key, video in sample.videos.items():
        with av.open(io.BytesIO(video), "r") as container:
            stream = container.streams.video[0]
            streams[key] = (
                sample.meta.cameras[key].codec,
                stream.codec_context.height,
                stream.codec_context.width,
            )
    return streams


def camera_summary(manifest: fmt.Manifest, key: str) -> dict[str, Any]:
    """Codec, pixel format and size of a camera's segments as written (the manifest's ``streams``), and
    what the source's info.json declared when it differs. Manifests written before ``streams`` existed:
    info.json's values, or the re-encode's codec (depth maps are never re-encoded)."""
    feature = manifest.features[key]
    info = feature.get("info") or {}
    depth = fmt.is_depth_map(feature)
    _, height, width = fmt.camera_chw(feature) or (None, None, None)
    declared = {
        "codec": info.get("video.codec"),
        "pix_fmt": info.get("video.pix_fmt"),
        "width": info.get("video.width", width),
        "height": info.get("video.height", height),
    }
    streams = manifest.streams.get(key)
    if not streams:
        vcodec = manifest.options.get("vcodec", "copy")
        codec = declared["codec"] or "?" if vcodec == "copy" or depth else vcodec
        return declared | {"codec": codec, "depth": depth}
    summary: dict[str, Any] = {
        name: "/".join(dict.fromkeys(str(s[name]) for s in streams)) for name in ("codec", "pix_fmt")
    }
    summary |= {"width": streams[0]["width"], "height": streams[0]["height"], "depth": depth}
    differs = {k: v for k, v in declared.items() if v is not None and str(v) != str(summary[k])}
    if differs and manifest.options.get("vcodec", "copy") == "copy":
        summary["info_json_says"] = differs
    return summary


def _task_summary(
    url: str, manifest: fmt.Manifest, storage_options: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Each task index of the converted episodes with its task string and how many episodes have it."""
    _, _, tasks_name = fmt.META_FILES
    tasks_url = storage.join(url, tasks_name)
    table = pq.read_table(io.BytesIO(storage.read_bytes(tasks_url, storage_options)))
    strings = fmt.task_strings(table, tasks_url)
    counts = Counter(t for e in manifest.episodes for t in e.task_indices)
    return [
        {"task_index": index, "task": strings.get(index, "?"), "episodes": count}
        for index, count in sorted(counts.items())
    ]
