"""Hub dataset repos get a dataset card; what can be checked without the internet."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import DATA

from lerobot_wds import ConvertConfig, convert
from lerobot_wds.converter.card import dataset_card, hub_dataset_repo


@pytest.mark.parametrize(
    ("url", "repo"),
    [
        ("hf://datasets/me/pusht-wds", "me/pusht-wds"),
        ("hf://datasets/me/pusht-wds/", "me/pusht-wds"),
        ("hf://datasets/me/pusht-wds@main/sub/dir", "me/pusht-wds"),
        ("hf://buckets/me/bucket/prefix", None),
        ("s3://bucket/prefix", None),
        ("/local/path", None),
    ],
)
def test_hub_dataset_repo(url: str, repo: str | None) -> None:
    assert hub_dataset_repo(url) == repo


def test_dataset_card_declares_the_shards(tmp_path: Path) -> None:
    manifest = convert(str(DATA / "multi"), str(tmp_path / "d"), ConvertConfig()).manifest
    card = dataset_card(manifest)
    front_matter = yaml.safe_load(card.split("---")[1])
    assert front_matter["configs"][0]["data_files"][0]["path"] == "shards/*.tar"
    assert "LeRobot" in front_matter["tags"]
    assert "24\nepisodes" in card or "24 episodes" in card.replace("\n", " ")
    assert "`observation.images.wrist`" in card
