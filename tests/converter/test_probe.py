"""``converter/probe.py``'s frame index (frames and keyframes, no decoding) on every codec a source may hold.

Two independent readers check it: PyAV decoding every frame (each frame's presentation index; any stack)
and torchcodec 0.17's ``VideoStream.scan()`` (frame index and keyframes from the packets; skipped where
torchcodec has no ``Demuxer``). Files: the AV1 and h264 fixtures (LeRobot's writer), g1 (real AV1), and
clips encoded here with B-frames, which reorder frames: h264, HEVC (open GOPs) and MPEG-4 Part 2.
"""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import DATA, REAL

from lerobot_wds.converter.probe import _demuxed, index_stream

FPS = 30
CODECS = {  # encoder -> options; every one with B-frames
    "libx264": {"bf": "3", "g": "12", "sc_threshold": "1000000000"},
    "libx265": {"x265-params": "bframes=3:keyint=12:min-keyint=12:open-gop=1:log-level=none"},
    "mpeg4": {"bf": "2", "g": "12", "qscale": "3"},
}


def _encode(path: Path, codec: str, num_frames: int = 50) -> Path:
    """A 64x48 clip at FPS whose content changes every frame (so encoders do use B-frames)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS, options=CODECS[codec])
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, FPS)
        for index in range(num_frames):
            array = np.full((48, 64, 3), (index * 37) % 200 + 20, np.uint8)
            array[8:24, index % 48 : index % 48 + 16] = 235
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module", params=["av1-tiny", "h264-fixture", "g1", *CODECS])
def video(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """(mp4, fps) of one codec."""
    name = request.param
    if name == "av1-tiny":
        return DATA / "tiny/videos/observation.images.front/chunk-000/file-000.mp4", 30
    if name == "h264-fixture":
        return DATA / "h264/videos/observation.images.front/chunk-000/file-000.mp4", 10
    if name == "g1":
        if not REAL.is_dir():
            pytest.skip(f"{REAL} not found (the shared real-robot fixture)")
        return REAL / "videos/observation.images.cam_high/chunk-000/file-000.mp4", 30
    return _encode(tmp_path_factory.mktemp(name) / f"{name}.mp4", name), FPS


def _reorders(path: Path) -> bool:
    with av.open(str(path)) as container:
        return any(p.pts != p.dts for p in container.demux(video=0) if p.size > 0)


def test_the_encoded_clips_reorder_frames(tmp_path: Path) -> None:
    """The B-frame clips exercise the demux path (pts differ from decode times)."""
    for codec in CODECS:
        assert _reorders(_encode(tmp_path / f"{codec}.mp4", codec)), codec


def test_frames_are_the_decoded_frames(video: tuple[Path, int]) -> None:
    path, fps = video
    index = index_stream(path, fps)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start, time_base = stream.start_time or 0, stream.time_base
        assert time_base is not None
        decoded = sorted(round((f.pts - start) * time_base * fps) for f in container.decode(stream))
    assert index.frames.tolist() == decoded
    assert min(index.keyframes, default=None) == 0


def test_the_index_path_equals_the_demux_path(video: tuple[Path, int]) -> None:
    """Whichever path index_stream takes, a full demux gives the same frames and keyframes."""
    path, fps = video
    index = index_stream(path, fps)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        pts, keys = _demuxed(container, stream)
        scale = stream.time_base * fps
        frames = [round((p - (stream.start_time or 0)) * scale) for p in pts]
    assert index.frames.tolist() == sorted(frames)
    assert index.keyframes == {f for f, k in zip(frames, keys, strict=True) if k}


@pytest.mark.skipif(importlib.util.find_spec("torchcodec") is None, reason="torchcodec is not installed")
def test_torchcodec_scan_agrees(video: tuple[Path, int]) -> None:
    """torchcodec >= 0.17 reads the same frame index from the packets (skipped before: no Demuxer)."""
    from torchcodec import decoders

    if not hasattr(decoders, "Demuxer"):
        pytest.skip("torchcodec < 0.17: no Demuxer / VideoStream.scan()")
    path, fps = video
    index = index_stream(path, fps)
    scanned = decoders.Demuxer(str(path)).streams[0].scan()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        start_s = float((stream.start_time or 0) * stream.time_base)
    frames = np.rint((scanned.pts_seconds.numpy() - start_s) * fps).astype(np.int64)
    assert len(scanned) == index.frames.size
    assert np.sort(frames).tolist() == index.frames.tolist()
    assert set(frames[scanned.key_frame_indices.numpy()].tolist()) == index.keyframes
