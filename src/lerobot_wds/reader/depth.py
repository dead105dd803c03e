"""Depth maps stored as video (LeRobot 0.6.1): 12-bit codes in HEVC ``gray12le``, returned in millimetres
(or metres: ``depth_output_unit``).

LeRobot quantizes a depth map to 12-bit codes (log scale by default) when it records, and on read
decodes them with PyAV (torchcodec returns RGB only) and dequantizes them to float32 millimetres,
``(1, H, W)`` per frame; ``image_transforms`` and ``return_uint8`` do not apply to depth. This module
does the same from an episode's own segment, frame by index, with LeRobot's arithmetic op for op so
that the values are bit-identical (tests/reader/test_depth.py, golden items written by LeRobot).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..format import MM_PER_METRE, ShardFormatError

QMAX = 4095  # 12-bit codes
UINT16_MAX = 65535.0


@dataclass(frozen=True, slots=True)
class DepthQuantization:
    """How a depth feature was quantized (``video.depth_min`` ... in its ``info``; LeRobot's defaults)."""

    depth_min: float = 0.01  # metres at code 0
    depth_max: float = 10.0  # metres at code QMAX
    shift: float = 3.5  # metres added before the log
    use_log: bool = True

    @classmethod
    def of(cls, feature: dict[str, Any]) -> DepthQuantization:
        info = feature.get("info") or {}
        names = ("depth_min", "depth_max", "shift", "use_log")
        values = {name: info[f"video.{name}"] for name in names if info.get(f"video.{name}") is not None}
        quantization = cls(**values)
        if quantization.use_log and quantization.depth_min + quantization.shift <= 0:
            raise ValueError(
                f"depth quantization: depth_min + shift = {quantization.depth_min + quantization.shift}; "
                "expected > 0 for log quantization"
            )
        return quantization

    def dequantize(self, codes: torch.Tensor, unit: str = "mm") -> torch.Tensor:
        """uint16 codes ``(N, 1, H, W)`` -> float32 ``(N, 1, H, W)`` in ``unit`` (``"mm"`` or ``"m"``):
        LeRobot's ``dequantize_depth`` (torch path), the same ops in the same order."""
        if self.use_log:
            low, high = math.log(self.depth_min + self.shift), math.log(self.depth_max + self.shift)
        else:
            low, high = self.depth_min, self.depth_max
        scale, offset = (high - low) / QMAX, low
        values = codes.squeeze(-3).to(dtype=torch.float32, copy=True)
        values.mul_(scale).add_(offset)
        if self.use_log:
            values.exp_().sub_(self.shift)
        values.clamp_(self.depth_min, self.depth_max).unsqueeze_(-3)
        if unit == "m":
            return values
        return values.mul_(MM_PER_METRE).round_().clamp_(0.0, UINT16_MAX)


class DepthDecoder:
    """PyAV over one episode's depth segment: 12-bit codes of frames by index, uint16 ``(1, H, W)``.

    The segment's packets are indexed once (frame ``i`` has the ``i``-th presentation timestamp);
    a window decodes forward from the last keyframe at or before its first frame. Should the
    demuxer's seek land after that frame, the window is decoded from the segment's start instead.
    """

    def __init__(self, data: bytes, where: str) -> None:
        import av

        self.where = where
        try:
            self.container = av.open(io.BytesIO(data), mode="r")
            self.stream = self.container.streams.video[0]
            # One thread, as torchcodec's decoders here: FFmpeg's own worker threads would not exist in a
            # DataLoader worker forked while this decoder is alive, and freeing it there (the garbage
            # collector of the forked worker) would wait on their condition variables forever.
            self.stream.codec_context.thread_count = 1
            packets = [(p.pts, p.is_keyframe) for p in self.container.demux(self.stream) if p.pts is not None]
        except (av.error.FFmpegError, IndexError) as exc:  # IndexError: no video stream
            raise ShardFormatError(f"{where}: not a decodable video; {exc}") from exc
        self.pts = sorted(pts for pts, _ in packets)
        self.keyframes = sorted(pts for pts, keyframe in packets if keyframe)
        self.num_frames = len(self.pts)

    def frames(self, indices: np.ndarray) -> list[torch.Tensor]:
        import av

        requested = indices.tolist()
        wanted = {self.pts[i]: i for i in set(requested)}
        first = min(wanted)
        start = max((pts for pts in self.keyframes if pts <= first), default=self.pts[0])
        try:
            found = self._decode(start, wanted)
            if len(found) < len(wanted):
                found = self._decode(self.pts[0], wanted)
        except av.error.FFmpegError as exc:
            raise ShardFormatError(
                f"{self.where}: frames {sorted(wanted.values())} do not decode; {exc}"
            ) from exc
        if len(found) < len(wanted):
            missing = sorted(set(wanted.values()) - set(found))
            raise ShardFormatError(
                f"{self.where}: depth frames {missing} do not decode; expected every frame of the segment"
            )
        return [found[i] for i in requested]

    def _decode(self, start: int, wanted: dict[int, int]) -> dict[int, torch.Tensor]:
        self.container.seek(start, stream=self.stream, backward=True, any_frame=False)
        found: dict[int, torch.Tensor] = {}
        last = max(wanted)
        for frame in self.container.decode(self.stream):
            if frame.pts in wanted:
                codes = frame.to_ndarray(format="gray12le", threads=1)  # no FFmpeg threads: see __init__
                found[wanted[frame.pts]] = torch.from_numpy(codes).unsqueeze(0)
            if frame.pts is not None and frame.pts >= last:
                break
        return found
