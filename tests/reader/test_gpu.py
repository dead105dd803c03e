"""Decoding on the GPU (NVDEC through torchcodec): what a CPU machine can check, and the rest marked gpu.

NVDEC on A100/H100 has no AV1, so the GPU path reads a dataset re-encoded to H.264 by the converter
(``--vcodec h264``). Colour conversion on the GPU may differ from FFmpeg's by a level or two, so the
frames are checked by the code grid each fixture frame carries (frame, episode, camera), which any
wrong frame breaks and small colour differences do not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import DATA, read_frame_code
from torch.utils.data import DataLoader

from lerobot_wds import ConvertConfig, ShardedLeRobotDataset, convert

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error a machine without CUDA gives")
def test_cuda_decoding_without_cuda_is_refused_clearly(converted: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"video_decode_device: got 'cuda', but torch sees no CUDA device"):
        ShardedLeRobotDataset(converted["tiny"], video_decode_device="cuda")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("batch_size", [None, 16])
def test_nvdec_items_show_the_right_frames(tmp_path: Path, batch_size: int | None) -> None:
    url = str(tmp_path / "multi-h264")
    convert(str(DATA / "multi"), url, ConvertConfig(vcodec="h264", crf=18))
    dataset = ShardedLeRobotDataset(
        url,
        delta_timestamps={"observation.images.front": [-1 / 15, 0.0]},
        video_decode_device="cuda",
        return_uint8=True,
        batch_size=batch_size,
    )
    loader = DataLoader(dataset, batch_size=None if batch_size else 16, num_workers=0)
    seen = 0
    for batch in loader:
        front, wrist = batch["observation.images.front"], batch["observation.images.wrist"]
        assert front.device.type == wrist.device.type == "cuda"
        for row in range(len(batch["index"])):
            episode, frame = int(batch["episode_index"][row]), int(batch["frame_index"][row])
            assert read_frame_code(front[row, 0].cpu().numpy()) == (max(frame - 1, 0), episode, 0)
            assert read_frame_code(front[row, 1].cpu().numpy()) == (frame, episode, 0)
            assert read_frame_code(wrist[row].cpu().numpy()) == (frame, episode, 1)
        seen += len(batch["index"])
    assert seen == dataset.num_frames
