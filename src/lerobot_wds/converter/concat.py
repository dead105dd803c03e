"""Concatenate episode segments into one mp4 per camera and file, by stream copy (no re-encode).

What LeRobot's writer does with ``concatenate_video_files`` (ffmpeg's concat demuxer, then a remux with
``movflags=faststart``), done here one segment at a time: each segment's packets are shifted by the
durations of the segments before it, so its first frame sits exactly at the episode's
``from_timestamp`` and timestamps continue across episodes. Segments start on a keyframe and reference
no frame outside themselves (LeRobot encodes each episode on its own, GOP 2), so the concatenation
decodes pixel-identical to the segments.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.video.stream

from ..format import ShardFormatError


class ConcatenatedVideo:
    """One output mp4 that segments are appended to; ``close()`` finishes it.

    The stream's codec parameters (extradata included) come from the first segment, as in LeRobot's
    concatenation; later segments must share its time base and codec.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._output: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._time_base: Fraction | None = None
        self._codec = ""
        self._offset = 0  # pts offset of the next segment, in time-base ticks
        self.duration_s = 0.0  # float sum of the segments' durations, as LeRobot's to_timestamp
        self.size_bytes = 0  # sum of the appended segments' sizes

    def append(self, segment: bytes, where: str) -> tuple[float, float]:
        """Append one segment; return its ``(from_timestamp, to_timestamp)`` in this file, seconds.

        ``to - from`` is the segment's stream duration as LeRobot's ``get_video_duration_in_s`` reads
        it, and ``from`` is the previous segment's ``to`` (the float sums LeRobot's writer records).
        """
        with av.open(io.BytesIO(segment), "r") as source:
            stream = source.streams.video[0] if source.streams.video else None
            if stream is None or stream.time_base is None or stream.duration is None:
                raise ShardFormatError(f"{where}: segment has no video stream with a time base and duration")
            output = self._open(stream, where)
            for packet in source.demux(stream):
                if packet.dts is None or packet.pts is None:  # the demuxer's flush packet
                    continue
                packet.pts += self._offset
                packet.dts += self._offset
                packet.stream = output
                self._mux(packet)
            from_timestamp = self.duration_s
            self.duration_s = from_timestamp + float(stream.duration * stream.time_base)
            self._offset += stream.duration
        self.size_bytes += len(segment)
        return from_timestamp, self.duration_s

    def _open(self, stream: av.video.stream.VideoStream, where: str) -> av.video.stream.VideoStream:
        codec = stream.codec_context.codec.canonical_name
        if self._output is None or self._stream is None:
            self._output = av.open(str(self.path), "w", format="mp4", options={"movflags": "faststart"})
            self._stream = self._output.add_stream_from_template(stream, opaque=True)
            self._stream.time_base = stream.time_base
            self._time_base, self._codec = stream.time_base, codec
        elif (stream.time_base, codec) != (self._time_base, self._codec):
            raise ShardFormatError(
                f"{where}: segment is {codec} in time base {stream.time_base}; expected "
                f"{self._codec} in {self._time_base} like the segments before it in {self.path.name}"
            )
        return self._stream

    def _mux(self, packet: av.Packet) -> None:
        assert self._output is not None  # set by _open before any packet
        self._output.mux(packet)

    def close(self) -> None:
        if self._output is not None:
            self._output.close()
            self._output = None
