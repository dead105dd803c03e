"""``lerobot-wds preview``: the PNG shows the episode's own frames where it says, and its features' names."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import DATA, REAL, read_frame_code, read_samples
from PIL import Image

from lerobot_wds import ConvertConfig, convert
from lerobot_wds import format as fmt
from lerobot_wds._torchcodec import video_decoder_class
from lerobot_wds.cli import main
from lerobot_wds.preview import EpisodePreview, _shown, dimension_names, preview_episode


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """multi in small shards: later episodes sit in later shards, fetched by a ranged read."""
    out = tmp_path_factory.mktemp("preview") / "multi"
    convert(str(DATA / "multi"), str(out), ConvertConfig(shard_size_mb=0.4))
    return out


def _tiles(preview: EpisodePreview) -> dict[tuple[str, int], np.ndarray]:
    """(camera key, frame index) -> the pixels of that tile, cut out of the PNG."""
    image = np.asarray(Image.open(io.BytesIO(preview.png)).convert("RGB"))
    assert image.shape == (preview.height, preview.width, 3)
    return {
        (t.camera_key, t.frame_index): image[t.top : t.top + t.height, t.left : t.left + t.width]
        for t in preview.tiles
    }


def test_strips_hold_the_episode_frames(multi: Path) -> None:
    episode_index = 19
    manifest = fmt.read_manifest(str(multi))
    entry = next(e for e in manifest.episodes if e.episode_index == episode_index)
    assert entry.shard != manifest.shards[0].path  # a ranged read into a later shard
    preview = preview_episode(str(multi), episode_index, num_frames=5)
    expected_indices = np.linspace(0, entry.num_frames - 1, 5).round().astype(int).tolist()
    assert [t.frame_index for t in preview.tiles] == expected_indices * 2
    assert [t.timestamp_s for t in preview.tiles[:5]] == pytest.approx([i / 15 for i in expected_indices])
    assert preview.title == "stack the green cup on the blue cup"  # task 19 % 4 == 3
    sample = read_samples(multi)[episode_index]
    tiles = _tiles(preview)
    for camera_number, camera_key in enumerate(manifest.camera_keys):
        decoder = video_decoder_class()(sample[fmt.video_suffix(camera_key)], seek_mode="exact")
        frames = decoder.get_frames_at(indices=expected_indices).data.permute(0, 2, 3, 1).numpy()
        for frame_index, frame in zip(expected_indices, frames, strict=True):
            tile = tiles[(camera_key, frame_index)]
            assert read_frame_code(tile) == (frame_index, episode_index, camera_number)
            np.testing.assert_array_equal(tile, frame)  # unscaled: the decoded pixels themselves
    assert preview.plots["action"] == ["code", "episode", "frame", "t", "task", "neg_code"]
    assert set(preview.plots) == {"observation.state", "action", "next.reward", "next.done"}


def test_real_robot_frames_are_scaled_and_named(tmp_path: Path) -> None:
    if not REAL.exists():
        pytest.skip(f"{REAL}: the real-robot fixture is not beside the repository")
    convert(str(REAL), str(tmp_path / "g1"), ConvertConfig(episodes=(4,)))
    preview = preview_episode(str(tmp_path / "g1"), 4, max_tile_height=120)
    assert {(t.width, t.height) for t in preview.tiles} == {(160, 120)}  # 480x640 scaled, aspect kept
    info = json.loads((REAL / "meta/info.json").read_text())
    names = info["features"]["observation.state"]["names"]  # a list in a list: one per axis
    assert preview.plots["observation.state"] == [str(n) for n in np.ravel(names)]
    assert len(preview.plots["action"]) == 26
    assert preview.title == "Pick up the yellow bottle on the table."


def test_depth_and_stored_images_get_strips(tmp_path: Path) -> None:
    convert(str(DATA / "depth"), str(tmp_path / "depth"), ConvertConfig())
    preview = preview_episode(str(tmp_path / "depth"), 2, num_frames=3)
    info = json.loads((DATA / "depth/meta/info.json").read_text())
    cameras = [k for k, f in info["features"].items() if f["dtype"] in ("video", "image")]
    assert [t.camera_key for t in preview.tiles] == [k for k in cameras for _ in range(3)]
    tiles = _tiles(preview)
    for key in cameras[1:]:  # the depth maps: grey, scaled over the strip from black to white
        strip = np.stack([tiles[(key, t.frame_index)] for t in preview.tiles if t.camera_key == key])
        assert (strip[..., 0] == strip[..., 2]).all()
        assert strip.min() == 0
        assert strip.max() == 255


def test_remote_preview_equals_local(
    s3_server: dict[str, Any], s3_bucket: str, multi: Path, tmp_path: Path
) -> None:
    url = f"s3://{s3_bucket}/multi"
    convert(str(DATA / "multi"), url, ConvertConfig(shard_size_mb=0.4, storage_options=s3_server))
    remote = preview_episode(url, 11, num_frames=4, storage_options=s3_server)
    local = preview_episode(str(multi), 11, num_frames=4)
    assert remote.tiles == local.tiles
    remote_tiles, local_tiles = _tiles(remote), _tiles(local)
    for key, tile in local_tiles.items():
        np.testing.assert_array_equal(remote_tiles[key], tile)


def test_dimension_names() -> None:
    assert dimension_names("a", ["x", "y"], 2) == ["x", "y"]
    assert dimension_names("a", [["x", "y"]], 2) == ["x", "y"]
    assert dimension_names("a", {"motors": ["x", "y"]}, 2) == ["x", "y"]
    assert dimension_names("a", None, 2) == ["a[0]", "a[1]"]
    assert dimension_names("a", ["x"], 2) == ["a[0]", "a[1]"]  # a mismatch is not guessed at


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("/data/x", "/data/x"),
        ("s3://bucket/x", "s3://bucket/x"),
        ("hf://datasets/me/x@main/v1", "hf://datasets/me/x@main/v1"),
        ("https://user:secret@host:8443/a?token=abc", "https://host:8443/a"),  # no credentials in the PNG
    ],
)
def test_the_url_in_the_image_carries_no_credentials(url: str, shown: str) -> None:
    assert _shown(url) == shown


def test_cli_writes_the_png(multi: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ep.png"
    assert main(["preview", str(multi), "--episode", "3", "--out", str(out), "--frames", "2"]) == 0
    assert f"{out}: " in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.format == "PNG"
    assert main(["preview", str(multi), "--episode", "99", "--out", str(out)]) == 2
    assert "episode 99 is not in the dataset; got 24 episodes, 0..23" in capsys.readouterr().err


def test_missing_matplotlib_names_the_extra(
    multi: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    assert main(["preview", str(multi), "--episode", "3", "--out", str(tmp_path / "x.png")]) == 2
    assert "pip install 'lerobot-wds[preview]'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
