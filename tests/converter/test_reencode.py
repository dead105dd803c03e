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
