"""The ``videos`` level of ``lerobot-wds check``: each mp4's real stream and packet index, no decoding.

Opening a file with PyAV gives the stream's codec, pixel format, size and frame rate (its codec
parameters) and the container's index (an mp4's sample table: each frame's timestamp and keyframe
flag), so a file costs its header, not a read of its packets; streams that reorder frames are demuxed
for their packets' pts instead. No frame is decoded. Frame positions are computed as
``converter/segment.py`` computes them (``round((pts - start) * time_base * fps)``, in integers), so
what the check says about an episode's segment is what stream copy will find.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from .checkrows import open_source_file
from .findings import Problem, file_errors
from .segment import SegmentCutter, SegmentError
from .source import LeRobotSource, SourceEpisode

_KEYFRAME_HINT = (
    "stream copy needs a keyframe at each episode's first frame: convert refuses this episode, --vcodec "
    "too (it cuts before re-encoding); skip it with --skip-bad-episodes, or re-encode the source with a "
    "keyframe at each episode start"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamIndex:
    """What a video file's container says about its first video stream, without decoding."""

    codec: str  # FFmpeg's canonical name: "av1", "h264", "hevc", "mpeg4" (MPEG-4 Part 2), ...
    codec_long_name: str
    pix_fmt: str | None
    width: int
    height: int
    fps: float | None  # the stream's average frame rate
    frames: np.ndarray  # presentation index of every packet, sorted
    keyframes: frozenset[int]  # presentation indices of keyframe packets

    def params(self) -> dict[str, Any]:
        return {"codec": self.codec, "pix_fmt": self.pix_fmt, "width": self.width, "height": self.height}


def index_stream(file: Any, fps: int) -> StreamIndex:
    """A video file's first video stream (a path or a binary file object), from its container's index.

    An mp4's sample table gives every frame's timestamp and keyframe flag as soon as the file is opened,
    without reading a packet (g1's 35 MB file: 5 ms, against 62 ms to demux it). Those timestamps are
    decode times: they are used when the stream does not reorder frames (no B-frames, and the first
    packets' pts equal their dts and the index's), else every packet header is demuxed (no decoding).
    """
    with av.open(file) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        time_base = stream.time_base
        if time_base is None:
            raise ValueError("video stream has no time base")
        context = stream.codec_context
        pts, keys = _from_index(container, stream)
        if pts is None:
            pts, keys = _demuxed(container, stream)
        ticks = (np.array(pts, dtype=np.int64) - (stream.start_time or 0)) * time_base.numerator * fps
        frames = (2 * ticks + time_base.denominator) // (2 * time_base.denominator)
        order = np.argsort(frames, kind="stable")
        return StreamIndex(
            codec=context.codec.canonical_name,
            codec_long_name=context.codec.long_name,
            pix_fmt=context.format.name if context.format is not None else None,
            width=context.width,
            height=context.height,
            fps=float(stream.average_rate) if stream.average_rate else None,
            frames=frames[order],
            keyframes=frozenset(int(f) for f, k in zip(frames.tolist(), keys, strict=True) if k),
        )


_INDEX_PROBE_PACKETS = 32  # packets demuxed to confirm that the index's decode times are the pts


def _from_index(container: Any, stream: Any) -> tuple[list[int] | None, list[bool]]:
    """Timestamps and keyframe flags from the container's index; None when it cannot stand for the pts."""
    entries = [e for e in stream.index_entries if not e.is_discard and e.size > 0]
    if not entries or stream.codec_context.has_b_frames:
        return None, []
    probe = []
    for packet in container.demux(stream):
        if packet.size > 0:
            probe.append(packet)
        if len(probe) == min(_INDEX_PROBE_PACKETS, len(entries)):
            break
    if any(
        p.pts is None or p.pts != p.dts or p.pts != e.timestamp for p, e in zip(probe, entries, strict=False)
    ):
        return None, []
    return [e.timestamp for e in entries], [e.is_keyframe for e in entries]


def _demuxed(container: Any, stream: Any) -> tuple[list[int], list[bool]]:
    """Every packet's pts and keyframe flag, from a demux from the start (headers only: no decoding)."""
    container.seek(0, stream=stream)
    pts, keys = [], []
    for packet in container.demux(stream):
        if packet.pts is not None and packet.size > 0:
            pts.append(packet.pts)
            keys.append(packet.is_keyframe)
    return pts, keys


def video_problems(
    lerobot: LeRobotSource, episodes: Sequence[SourceEpisode], *, skip_files: set[str | None]
) -> tuple[list[Problem], dict[str, list[dict[str, Any]]]]:
    """Per camera and episode: the segment inside the file, its frame count and first keyframe; per
    camera: the real stream parameters vs info.json. Also returns each camera's distinct streams."""
    problems: list[Problem] = []
    streams: dict[str, list[dict[str, Any]]] = {}
    for key in lerobot.camera_keys:
        by_file: dict[str, list[SourceEpisode]] = {}
        for episode in episodes:
            by_file.setdefault(episode.videos[key].file, []).append(episode)
        for relative, members in sorted(by_file.items()):
            if relative in skip_files:
                continue
            try:
                with open_source_file(lerobot, relative) as file:
                    index = index_stream(file, lerobot.fps)
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                in_file = [e.episode_index for e in members]
                problems += file_errors("videos.unreadable", relative, in_file, f"{relative}: {exc}",
                                        "the file is not a readable video")  # fmt: skip
                continue
            if index.params() not in streams.setdefault(key, []):
                streams[key].append(index.params())
            problems += _stream_problems(lerobot, key, relative, index)
            for episode in members:
                problems += _segment_problems(episode, key, relative, index, lerobot.fps)
    return problems, streams


def _stream_problems(lerobot: LeRobotSource, key: str, relative: str, index: StreamIndex) -> list[Problem]:
    """The stream's real parameters against what info.json declares (warnings: the streams win)."""
    feature = lerobot.features[key]
    info = feature.get("info") or {}
    shape = feature.get("shape") or []
    declared_size = (
        info.get("video.height", shape[0] if len(shape) == 3 else None),
        info.get("video.width", shape[1] if len(shape) == 3 else None),
    )
    hint = (
        "the converter copies the stream as it is and records its real parameters in the shards "
        "(inspect shows them); correct info.json to silence this"
    )
    checks = [
        ("videos.codec", info.get("video.codec"), index.codec, f" ({index.codec_long_name})"),
        ("videos.pix_fmt", info.get("video.pix_fmt"), index.pix_fmt, ""),
        (
            "videos.size",
            "x".join(map(str, declared_size)) if None not in declared_size else None,
            f"{index.height}x{index.width}",
            " (height x width)",
        ),
        ("videos.fps", info.get("video.fps", lerobot.fps), index.fps, ""),
    ]
    found = []
    for check, declared, real, note in checks:
        if declared is None or real is None:
            continue
        differs = abs(float(declared) - float(real)) > 1e-3 if check == "videos.fps" else declared != real
        if differs:
            detail = f"camera {key!r}: info.json says {declared}, the stream is {real}{note}"
            found.append(Problem(check=check, severity="warning", file=relative, detail=detail, hint=hint))
    return found


def _segment_problems(
    episode: SourceEpisode, key: str, relative: str, index: StreamIndex, fps: int
) -> list[Problem]:
    span = episode.videos[key]
    where = f"episode {episode.episode_index} camera {key!r}"

    def problem(check: str, detail: str, hint: str) -> Problem:
        return Problem(
            check=check,
            severity="error",
            episode=episode.episode_index,
            file=relative,
            detail=f"{where}: {detail}",
            hint=hint,
        )

    file_frames = int(index.frames[-1]) + 1 if index.frames.size else 0
    duration_s = file_frames / fps
    if span.from_timestamp < 0 or span.to_timestamp > duration_s + 1 / fps + 1e-6:
        return [
            problem(
                "videos.span",
                f"{span.from_timestamp:.4f}..{span.to_timestamp:.4f} s in a {duration_s:.4f} s file",
                "fix the episode's from/to_timestamp in meta/episodes",
            )
        ]
    first = round(span.from_timestamp * fps)
    low, high = np.searchsorted(index.frames, [first, first + episode.length])
    found = []
    if high - low != episode.length or (
        high > low and index.frames[high - 1] - index.frames[low] + 1 != high - low
    ):
        found.append(
            problem(
                "videos.frames",
                f"{high - low} frames at {first}..{first + episode.length - 1} "
                f"(from_timestamp x fps), length {episode.length}",
                "the converter copies exactly `length` frames from round(from_timestamp * fps); "
                "fix from_timestamp or length",
            )
        )
    if high > low and first not in index.keyframes:
        found.append(
            problem("videos.keyframe", f"frame {first} of {relative} is not a keyframe", _KEYFRAME_HINT)
        )
    return found


def decode_problems(
    lerobot: LeRobotSource, episodes: Sequence[SourceEpisode], *, skip: set[tuple[int, str]]
) -> list[Problem]:
    """The ``deep`` level: each episode's segment cut as ``convert`` cuts it (stream copy, the same
    code), then decoded: every frame must decode and there must be ``length`` of them. Local sources
    only (the cutter reads files on disk); ``skip`` holds (episode, camera) pairs already found bad."""
    problems: list[Problem] = []
    if lerobot.remote is not None:
        return [
            Problem(
                check="videos.deep",
                severity="warning",
                detail="remote source: not decoded",
                hint="check a local copy with --level deep to decode its segments",
            )
        ]
    for key in lerobot.camera_keys:
        cutter: SegmentCutter | None = None
        ordered = sorted(episodes, key=lambda e: (e.videos[key].file, e.videos[key].from_timestamp))
        for episode in ordered:
            span = episode.videos[key]
            if (episode.episode_index, key) in skip:
                continue
            if cutter is None or cutter.relative != span.file:
                if cutter is not None:
                    cutter.close()
                cutter = SegmentCutter(lerobot.root / span.file, relative=span.file, fps=lerobot.fps)
            where = f"episode {episode.episode_index} camera {key!r}"
            try:
                segment = cutter.cut(
                    from_timestamp=span.from_timestamp,
                    to_timestamp=span.to_timestamp,
                    num_frames=episode.length,
                    where=where,
                )
                decoded = _decoded_frames(segment.data)
            except SegmentError as exc:
                detail = str(exc)
            except av.error.FFmpegError as exc:
                detail = f"{where}: {exc}"
            else:
                if decoded == episode.length:
                    continue
                detail = f"{where}: {decoded} frames decode from its segment, length {episode.length}"
            problems.append(
                Problem(
                    check="videos.decode",
                    severity="error",
                    episode=episode.episode_index,
                    file=span.file,
                    detail=detail,
                    hint="the segment stream copy would write does not decode to the episode's frames",
                )
            )
        if cutter is not None:
            cutter.close()
    return problems


def _decoded_frames(data: bytes) -> int:
    count = 0
    with av.open(io.BytesIO(data), "r") as container:
        for _ in container.decode(video=0):  # one frame held at a time
            count += 1
    return count
