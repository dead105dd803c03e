"""Optional re-encode of an episode segment (``--vcodec h264|hevc``), for decoders that lack AV1.

NVDEC on A100/H100 cannot decode AV1, LeRobot's default codec. Re-encoding happens once per episode
segment at conversion time, with every frame an independent pair of frames (GOP 2, no B-frames) as
LeRobot writes them, so random access stays cheap. The PSNR against the source is measured on the
RGB frames that torchcodec returns, i.e. on what the reader hands to the model.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import av
import av.video.stream
import numpy as np

VCODECS = ("copy", "h264", "hevc")
_ENCODERS = {"h264": "libx264", "hevc": "libx265"}
# GOP 2 and no B-frames, as LeRobot encodes: any frame is at most one frame away from a keyframe.
_GOP = 2


@dataclass(frozen=True, slots=True)
class Reencoded:
    data: bytes
    psnr_db: float  # over all frames and RGB channels; inf when identical


def reencode(data: bytes, *, vcodec: str, crf: int, fps: int, where: str) -> Reencoded:
    """Decode a segment and encode it again with ``vcodec`` at constant quality ``crf``."""
    with av.open(io.BytesIO(data), "r") as source:
        frames = [f.to_ndarray(format="yuv420p") for f in source.decode(video=0)]
    if not frames:
        raise ValueError(f"{where}: segment has no decodable frame; expected at least one")
    height, width = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
    sink = io.BytesIO()
    with av.open(sink, "w", format="mp4") as output:
        stream = output.add_stream(_ENCODERS[vcodec], rate=fps)
        if not isinstance(stream, av.video.stream.VideoStream):
            raise TypeError(f"{where}: {_ENCODERS[vcodec]} gave a {type(stream).__name__}; expected video")
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        options: dict[str, object] = {"crf": str(crf), "g": str(_GOP), "bf": "0", "preset": "medium"}
        if vcodec == "hevc":
            options["x265-params"] = "log-level=error"
        stream.options = options
        for index, planes in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    encoded = sink.getvalue()
    return Reencoded(data=encoded, psnr_db=psnr_db(data, encoded, len(frames)))


def psnr_db(reference: bytes, candidate: bytes, num_frames: int) -> float:
    """PSNR of ``candidate`` against ``reference`` over the RGB frames torchcodec decodes."""
    from .._torchcodec import video_decoder_class

    VideoDecoder = video_decoder_class()
    indices = list(range(num_frames))
    a = VideoDecoder(reference, seek_mode="exact").get_frames_at(indices).data.numpy().astype(np.float64)
    b = VideoDecoder(candidate, seek_mode="exact").get_frames_at(indices).data.numpy().astype(np.float64)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
