"""``verify`` (re-read every byte against the manifest) and ``inspect`` (summarise) a converted dataset."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import av

from .. import format as fmt
from .. import storage


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
    """Passes reads through while hashing them, so one sequential pass checks sha256 and structure."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def verify(url: str, storage_options: Mapping[str, Any] | None = None) -> VerifyReport:
    """Re-read every shard: checksum, tar structure, member sets, offsets, frame and row counts."""
    manifest = fmt.read_manifest(url, storage_options)
    report = VerifyReport(url=url)
    entries = {e.episode_index: e for e in manifest.episodes}
    for shard in manifest.shards:
        _verify_shard(url, manifest, shard, entries, storage_options, report)
        report.shards_checked += 1
    return report


def _verify_shard(
    url: str,
    manifest: fmt.Manifest,
    shard: fmt.ShardEntry,
    entries: dict[int, fmt.EpisodeEntry],
    storage_options: Mapping[str, Any] | None,
    report: VerifyReport,
) -> None:
    shard_url = storage.join(url, shard.path)
    fs, path = storage.url_to_fs(shard_url, storage_options)
    if not fs.exists(path):
        report.problems.append(f"{shard.path}: missing")
        return
    samples: dict[str, dict[str, bytes]] = {}
    offsets: dict[str, int] = {}
    with fs.open(path, "rb") as raw:
        reader = _HashingReader(raw)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    key, suffix = fmt.split_member_name(member.name)
                    offsets.setdefault(key, member.offset)
                    extracted = tar.extractfile(member)
                    samples.setdefault(key, {})[suffix] = extracted.read() if extracted else b""
        except (tarfile.TarError, fmt.ShardFormatError, EOFError) as exc:
            report.problems.append(f"{shard.path}: broken tar ({exc})")
        reader.drain()
    if reader.size != shard.size_bytes:
        report.problems.append(f"{shard.path}: {reader.size} bytes; manifest says {shard.size_bytes}")
    if reader.digest.hexdigest() != shard.sha256:
        report.problems.append(
            f"{shard.path}: sha256 {reader.digest.hexdigest()}; manifest says {shard.sha256}"
        )
    expected_keys = [fmt.episode_key(i) for i in shard.episodes]
    for key in sorted(set(samples) - set(expected_keys)):
        report.problems.append(f"{shard.path}: sample {key!r} is not in the manifest")
    for episode_index, key in zip(shard.episodes, expected_keys, strict=True):
        if key not in samples:
            report.problems.append(f"{shard.path}: episode {episode_index} ({key}) missing")
            continue
        where = f"{shard.path}: episode {episode_index}"
        entry = entries.get(episode_index)
        if entry is None or entry.offset_bytes != offsets[key]:
            report.problems.append(
                f"{where}: at byte {offsets[key]}; manifest says {entry and entry.offset_bytes}"
            )
        report.problems.extend(_sample_problems(where, samples[key], manifest, entry, report))
        report.episodes_checked += 1


def _sample_problems(
    where: str,
    members: dict[str, bytes],
    manifest: fmt.Manifest,
    entry: fmt.EpisodeEntry | None,
    report: VerifyReport,
) -> list[str]:
    expected = fmt.sample_suffixes(manifest.camera_keys)
    if sorted(members) != expected:
        return [f"{where}: members {sorted(members)}; expected {expected}"]
    problems = []
    num_frames = entry.num_frames if entry else -1
    try:
        meta = fmt.EpisodeMeta.from_json(members[fmt.META_SUFFIX], where)
        for camera_key, segment in meta.cameras.items():
            if segment.psnr_db is not None:
                report.psnr_db.setdefault(camera_key, []).append(segment.psnr_db)
        if meta.num_frames != num_frames:
            problems.append(f"{where}: meta.json has {meta.num_frames} frames; manifest says {num_frames}")
        rows = fmt.decode_rows(members[fmt.ROWS_SUFFIX], where)
        if rows.num_rows != num_frames:
            problems.append(f"{where}: {rows.num_rows} rows; manifest says {num_frames}")
    except fmt.ShardFormatError as exc:
        problems.append(str(exc))
    for camera_key in manifest.camera_keys:
        frames = count_video_frames(members[fmt.video_suffix(camera_key)])
        if frames != num_frames:
            problems.append(f"{where}: camera {camera_key!r} has {frames} frames; manifest says {num_frames}")
    return problems


def count_video_frames(data: bytes) -> int:
    """Frames (video packets) in an mp4 held in memory; -1 if it cannot be demuxed."""
    try:
        with av.open(io.BytesIO(data), "r") as container:
            return sum(p.size > 0 for p in container.demux(video=0))
    except (av.error.FFmpegError, IndexError):
        return -1


def inspect_dataset(url: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A summary of a converted dataset, from its manifest and one sample's metadata."""
    manifest = fmt.read_manifest(url, storage_options)
    tasks = Counter(t for e in manifest.episodes for t in e.task_indices)
    codecs = {
        key: manifest.features[key].get("info", {}).get("video.codec", "?") for key in manifest.camera_keys
    }
    frames = [e.num_frames for e in manifest.episodes]
    return {
        "url": url,
        "format_version": manifest.format_version,
        "source": f"{manifest.source.location}@{manifest.source.revision or 'local'}",
        "codebase_version": manifest.source.codebase_version,
        "fps": manifest.fps,
        "episodes": manifest.num_episodes,
        "frames": manifest.num_frames,
        "episode_frames_min_mean_max": [min(frames), round(sum(frames) / len(frames), 1), max(frames)]
        if frames
        else [],
        "shards": len(manifest.shards),
        "bytes": manifest.total_bytes,
        "cameras": codecs,
        "episodes_per_task_index": dict(sorted(tasks.items())),
        "options": manifest.options,
        "psnr_db_vs_source": manifest.psnr_db or "stream copy: pixel-identical to the source",
    }
