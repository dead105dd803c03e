"""The Hub's side: its ``webdataset`` builder (what the dataset viewer runs) reads our shards, and the
dataset card's ``configs`` make a published folder load as the episodes and nothing else."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import DATA, read_frame_code

from lerobot_wds import ConvertConfig, convert
from lerobot_wds import format as fmt
from lerobot_wds.converter.card import dataset_card
from lerobot_wds.converter.hub import HubTarget, plan_commits

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("card") / "multi"
    convert(str(DATA / "multi"), str(root), ConvertConfig(shard_size_mb=0.4))
    return root


def _check_rows(rows: list[dict[str, Any]], manifest: fmt.Manifest) -> None:
    """One row per episode, in tar order: meta.json as a dict, rows.arrow as bytes, each camera a
    torchcodec VideoDecoder whose first and last frames carry the episode's codes."""
    assert [fmt.parse_episode_key(row["__key__"]) for row in rows] == [
        e for shard in manifest.shards for e in shard.episodes
    ]
    entries = {e.episode_index: e for e in manifest.episodes}
    for row in rows:
        entry = entries[fmt.parse_episode_key(row["__key__"])]
        meta = row["meta.json"]
        assert isinstance(meta, dict)
        assert (meta["episode_index"], meta["num_frames"]) == (entry.episode_index, entry.num_frames)
        assert fmt.decode_rows(row[fmt.ROWS_SUFFIX], row["__key__"]).num_rows == entry.num_frames
        for camera_number, camera_key in enumerate(manifest.camera_keys):
            decoder = row[fmt.video_suffix(camera_key)]
            assert type(decoder).__name__ == "VideoDecoder"
            last = entry.num_frames - 1
            frames = decoder.get_frames_at(indices=[0, last]).data.numpy()
            assert read_frame_code(frames[0]) == (0, entry.episode_index, camera_number)
            assert read_frame_code(frames[1]) == (last, entry.episode_index, camera_number)


def test_the_hub_webdataset_builder_reads_the_shards(local: Path) -> None:
    manifest = fmt.read_manifest(str(local))
    assert len(manifest.shards) > 1
    shards = [str(local / s.path) for s in manifest.shards]
    stream = datasets.load_dataset("webdataset", data_files={"train": shards}, split="train", streaming=True)
    _check_rows(list(stream), manifest)


def test_the_card_makes_a_published_folder_load_as_its_episodes(local: Path, tmp_path: Path) -> None:
    """The repo as ``plan_commits`` publishes it (shards, meta, card, manifest), loaded as the Hub does:
    ``load_dataset(<repo>)`` reads the card's ``configs``; meta/*.parquet and manifest.json stay out."""
    manifest = fmt.read_manifest(str(local))
    repo = tmp_path / "repo"
    for commit in plan_commits(local, manifest, HubTarget("me/multi-wds", None, ""), remote={}):
        for path_in_repo, content in commit:
            (repo / path_in_repo).parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                (repo / path_in_repo).write_bytes(content)
            else:
                shutil.copyfile(content, repo / path_in_repo)
    front_matter = yaml.safe_load((repo / "README.md").read_text().split("---")[1])
    assert front_matter["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "shards/*.tar"}]}
    ]
    loaded = datasets.load_dataset(str(repo), streaming=True)
    assert list(loaded) == ["train"]
    _check_rows(list(loaded["train"]), manifest)


def test_card_paths_follow_the_prefix(local: Path) -> None:
    front_matter = yaml.safe_load(dataset_card(fmt.read_manifest(str(local)), "/v1/").split("---")[1])
    assert front_matter["configs"][0]["data_files"] == [{"split": "train", "path": "v1/shards/*.tar"}]
