"""--vcodec h264|hevc: each segment re-encoded once; frame count, timestamps, content and PSNR."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import DATA, read_frame_code, read_samples
from torchcodec.decoders import VideoDecoder

from lerobot_wds import ConvertConfig, convert, verify
from lerobot_wds import format as fmt
from lerobot_wds.cli import main


@pytest.mark.parametrize("vcodec", ["h264", "hevc"])
def test_reencoded_segments(tmp_path: Path, vcodec: str) -> None:
    dest = tmp_path / vcodec
    result = convert(str(DATA / "tiny"), str(dest), ConvertConfig(vcodec=vcodec, crf=23))
    assert result.manifest.options["vcodec"] == vcodec
    camera = "observation.images.front"
    assert result.manifest.psnr_db[camera]["min"] > 30.0
    fps = result.manifest.fps
    for episode_index, sample in read_samples(dest).items():
        meta = fmt.EpisodeMeta.from_json(sample[fmt.META_SUFFIX], "test")
        segment = meta.cameras[camera]
        assert segment.codec == vcodec
        assert segment.psnr_db is not None
        assert segment.psnr_db > 30.0
        decoder = VideoDecoder(sample[fmt.video_suffix(camera)], seek_mode="exact")
        assert decoder.metadata.codec == vcodec
        assert decoder.metadata.num_frames == meta.num_frames
        frames = decoder.get_frames_at(list(range(meta.num_frames)))
        expected_s = [i / fps for i in range(meta.num_frames)]
        assert frames.pts_seconds.tolist() == pytest.approx(expected_s, abs=1e-6)
        codes = [read_frame_code(f) for f in frames.data.numpy()]
        assert codes == [(i, episode_index, 0) for i in range(meta.num_frames)]
    report = verify(str(dest))
    assert report.ok, report.problems
    assert len(report.psnr_db[camera]) == 6


def test_vcodec_is_an_option_that_shapes_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "d"
    assert main(["convert", str(DATA / "tiny"), str(dest), "--vcodec", "h264", "--crf", "18"]) == 0
    with pytest.raises(ValueError, match="--overwrite"):
        convert(str(DATA / "tiny"), str(dest), ConvertConfig(vcodec="h264", crf=30))
    capsys.readouterr()
    assert main(["verify", str(dest)]) == 0
    assert "PSNR vs source min" in capsys.readouterr().out
    with pytest.raises(ValueError, match="vcodec"):
        ConvertConfig(vcodec="av1")


def test_depth_maps_are_never_reencoded(tmp_path: Path) -> None:
    """An 8-bit re-encode would destroy a depth map's 12-bit codes: with --vcodec h264 the RGB camera
    is re-encoded and the depth camera stays a stream copy (LeRobot-written tests/data/depth)."""
    plain = tmp_path / "copy"
    convert(str(DATA / "depth"), str(plain), ConvertConfig())
    dest = tmp_path / "h264"
    result = convert(str(DATA / "depth"), str(dest), ConvertConfig(vcodec="h264"))
    assert list(result.manifest.psnr_db) == ["observation.images.rgb"]
    copied, reencoded = read_samples(plain), read_samples(dest)
    for episode_index, sample in reencoded.items():
        cameras = fmt.EpisodeMeta.from_json(sample[fmt.META_SUFFIX], "test").cameras
        assert cameras["observation.images.rgb"].codec == "h264"
        assert cameras["observation.images.depth"].codec == "hevc"
        depth = fmt.video_suffix("observation.images.depth")
        assert sample[depth] == copied[episode_index][depth]
