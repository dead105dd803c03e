"""Hub sources: planned from meta/ and a listing; each task downloads only its episodes' files. Needs the
internet (the same route runs offline against a real S3 server in test_remote_source.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lerobot_wds import ConvertConfig, convert, verify
from lerobot_wds.converter.convert import plan_conversion
from lerobot_wds.converter.source import open_source


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.network
def test_convert_two_episodes_from_the_hub(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    source = open_source("lerobot/pusht", cache_dir=str(cache))
    try:
        assert source.revision is not None
        assert source.remote is not None
        assert source.remote.url == f"hf://datasets/lerobot/pusht@{source.revision}"
        assert {name.split("/")[0] for name in files_under(source.root)} == {"meta"}  # meta/ only
    finally:
        source.close()
    config = ConvertConfig(episodes=(0, 1), cache_dir=str(cache))
    plan_conversion("lerobot/pusht", config)
    assert files_under(cache) == []  # planning downloaded nothing it kept: sizes came from a listing
    result = convert("lerobot/pusht", str(tmp_path / "out"), config)
    assert result.manifest.source.revision == source.revision
    assert verify(str(tmp_path / "out")).ok
    assert files_under(cache) == []  # tasks read their episodes by byte ranges: nothing staged on disk


@pytest.mark.network
def test_an_hf_url_source_is_the_repo_id_pinned(tmp_path: Path) -> None:
    source = open_source("hf://datasets/lerobot/pusht@main", cache_dir=str(tmp_path / "cache"))
    try:
        assert source.location == "hf://datasets/lerobot/pusht"
        assert source.remote is not None
        assert source.remote.url == f"hf://datasets/lerobot/pusht@{source.revision}"
    finally:
        source.close()
