"""Cut an episode's packets out of a concatenated LeRobot mp4 by stream copy (no re-encode).

LeRobot v3 concatenates per-episode encodes, so every episode starts on a keyframe and shares no
reference frame with its neighbours: copying its packets into a new mp4 gives frames that decode
pixel-identical to the source (checked on every fixture segment by the tests).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.index
import av.packet
import av.stream

from ..format import CameraSegment
from ..storage import RangedFile

# libavformat's reads from a file object, in bytes: smaller than its 32 KiB default so that reading a
# remote mp4's index (a few KiB in a LeRobot file) does not fetch episodes a task does not convert.
_FILE_BUFFER_BYTES = 4096


class _ShortReads:
    """A remote file as PyAV reads it: ``read`` returns what one held or fetched extent has (avio takes
    short reads), so filling avio's buffer at the end of a planned range fetches nothing past it."""

    def __init__(self, file: RangedFile) -> None:
        self._file = file

    def read(self, size: int = -1) -> bytes:
        return self._file.read1(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()


class SegmentError(ValueError):
    """The source video does not match its episode metadata."""


@dataclass(frozen=True, slots=True)
class Segment:
    data: bytes  # a standalone mp4
    info: CameraSegment


class SegmentCutter:
    """Stream-copies consecutive episode segments out of one source mp4.

    Episodes asked for in increasing time order are served from one sequential demux, so each source
    byte is read once; an earlier or far-away start seeks (and falls back to a rescan from the start
    when the demuxer lands after the target, which happens). ``file`` is a local path or a seekable
    binary file (a remote object read by ranges: see :meth:`byte_ranges`).
    """

    def __init__(self, file: Path | io.RawIOBase, *, relative: str, fps: int) -> None:
        self.file = file
        self.relative = relative
        self.fps = fps
        self._container: av.container.InputContainer | None = None
        self._packets: Iterator[av.packet.Packet] = iter(())
        self._pending: list[av.packet.Packet] = []  # read but not yet consumed (belong to a later episode)
        self._next_index = 0  # presentation index of the next frame that can still be served
        self._open()

    def _open(self) -> None:
        self.close()
        try:
            if isinstance(self.file, Path):
                self._container = av.open(str(self.file))
            else:
                self.file.seek(0)
                file = _ShortReads(self.file) if isinstance(self.file, RangedFile) else self.file
                self._container = av.open(file, "r", buffer_size=_FILE_BUFFER_BYTES)
        except av.error.FFmpegError as exc:
            raise SegmentError(f"{self.relative}: cannot open video; {exc}") from exc
        if not self._container.streams.video:
            raise SegmentError(f"{self.relative}: no video stream; expected one")
        self._stream = self._container.streams.video[0]
        if self._stream.time_base is None:
            raise SegmentError(f"{self.relative}: video stream has no time base")
        self._time_base: Fraction = self._stream.time_base
        self._start_pts = self._stream.start_time or 0
        context = self._stream.codec_context
        self._codec = context.codec.canonical_name
        # the stream's own parameters, recorded in the shards: a source's info.json may say otherwise
        self._pix_fmt = context.format.name if context.format is not None else None
        self._size = (context.width, context.height)
        self._packets = self._container.demux(self._stream)
        self._pending = []
        self._next_index = 0

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _frame_index(self, pts: int | None) -> int:
        """Presentation index of a frame: ``round((pts - start) * time_base * fps)``, in integers."""
        assert pts is not None  # _next_packet drops packets without pts
        ticks = (pts - self._start_pts) * self._time_base.numerator * self.fps
        return (2 * ticks + self._time_base.denominator) // (2 * self._time_base.denominator)

    def _seek(self, frame_index: int) -> None:
        """Position the demuxer at the keyframe at or before ``frame_index``."""
        assert self._container is not None
        target = self._start_pts + round(Fraction(frame_index, self.fps) / self._time_base)
        self._container.seek(target, backward=True, any_frame=False, stream=self._stream)
        self._packets = self._container.demux(self._stream)
        self._pending = []
        first = self._next_packet()
        if first is None or first.pts is None or self._frame_index(first.pts) > frame_index:
            self._open()  # the seek landed after the target: rescan from the start
        else:
            self._pending = [first]
        self._next_index = frame_index

    def byte_ranges(self, spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        """The bytes of the source file that cutting each span of frames ``[first, end)`` reads, from the
        mp4's index (no packet read): from the keyframe a seek to ``first`` lands on to the packet whose
        decode time reaches ``end`` (where :meth:`_collect` stops), one range ``(start, end)`` per span.
        An episode's packets are contiguous in the file (LeRobot concatenates per-episode encodes)."""
        entries = [(self._frame_index(e.timestamp), e.pos, e.size, e.is_keyframe) for e in self._index()]
        # decode times run this many frames behind presentation times (B-frames: the first packet's dts < 0)
        delay = max(0, -entries[0][0]) if entries else 0
        ranges = []
        for first, end in spans:
            start = 0
            for i, (index, _, _, keyframe) in enumerate(entries):
                if index > first:
                    break
                if keyframe:
                    start = i
            stop = next((i for i in range(start, len(entries)) if entries[i][0] >= end), len(entries) - 1)
            # _collect stops at the span's last frame: one packet per frame from the keyframe on
            stop = min(stop, start + end - entries[start][0] - delay - 1)
            if entries:
                ranges.append((entries[start][1], entries[stop][1] + entries[stop][2]))
        return ranges

    def _index(self) -> list[av.index.IndexEntry]:
        if self._container is None:
            self._open()
        return [e for e in self._stream.index_entries if e.pos >= 0 and not e.is_discard]

    def _next_packet(self) -> av.packet.Packet | None:
        if self._pending:
            return self._pending.pop(0)
        for packet in self._packets:
            if packet.pts is not None and packet.size > 0:
                return packet
        return None

    def cut(self, *, from_timestamp: float, to_timestamp: float, num_frames: int, where: str) -> Segment:
        """The frames ``round(from_timestamp*fps)`` .. ``+num_frames`` as a standalone mp4."""
        first_index = round(from_timestamp * self.fps)
        if first_index < self._next_index or first_index > self._next_index + 2 * self.fps:
            self._seek(first_index)
        packets = self._collect(first_index, first_index + num_frames)
        self._check(packets, first_index, num_frames, where)
        return Segment(
            data=self._mux(packets),
            info=CameraSegment(
                codec=self._codec,
                time_base=(self._time_base.numerator, self._time_base.denominator),
                first_pts=0,
                num_frames=num_frames,
                from_timestamp=from_timestamp,
                to_timestamp=to_timestamp,
                source_file=self.relative,
                pix_fmt=self._pix_fmt,
                width=self._size[0],
                height=self._size[1],
            ),
        )

    def _collect(self, first_index: int, end_index: int) -> list[av.packet.Packet]:
        """Packets whose frames are in ``[first_index, end_index)``, in decode order.

        Decode order interleaves neighbours (with B-frames, the next episode's keyframe comes before
        this one's last frames), so select by presentation index and stop once decode time passes the end.
        """
        selected, later = [], []
        while (packet := self._next_packet()) is not None:
            index = self._frame_index(packet.pts)
            if first_index <= index < end_index:
                selected.append(packet)
                if len(selected) == end_index - first_index:  # every frame: read no packet of the next span
                    break
            elif index >= end_index:
                later.append(packet)
                if packet.dts is not None and self._frame_index(packet.dts) >= end_index:
                    break
        self._pending = later + self._pending
        self._next_index = end_index
        return selected

    def _check(self, packets: list[av.packet.Packet], first_index: int, num_frames: int, where: str) -> None:
        indices = sorted(self._frame_index(p.pts) for p in packets)
        if indices != list(range(first_index, first_index + num_frames)):
            raise SegmentError(
                f"{where}: {self.relative} has {len(indices)} frames at "
                f"{first_index}..{first_index + num_frames - 1}"
                f" (from_timestamp*fps); expected {num_frames} (the episode length)"
            )
        if not packets[0].is_keyframe:
            raise SegmentError(
                f"{where}: {self.relative} frame {first_index} (the episode's first) is not a keyframe; "
                "expected LeRobot's per-episode encoding, which starts every episode on one"
            )

    def _mux(self, packets: list[av.packet.Packet]) -> bytes:
        offset = min(p.pts or 0 for p in packets)  # the segment's first frame gets pts 0
        sink = io.BytesIO()
        with av.open(sink, "w", format="mp4") as output:
            stream = output.add_stream_from_template(self._stream, opaque=True)
            stream.time_base = self._time_base
            for packet in packets:
                packet.pts = (packet.pts or 0) - offset
                if packet.dts is not None:
                    packet.dts -= offset
                packet.stream = stream
                output.mux(packet)
        return sink.getvalue()
