"""Hub sources: only the files of the selected episodes are downloaded. Needs the internet."""

from __future__ import annotations

from pathlib import Path

import pytest

from lerobot_wds import ConvertConfig, convert, verify
from lerobot_wds.converter.source import open_source


@pytest.mark.network
def test_convert_two_episodes_from_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    source = open_source("lerobot/pusht", episodes=[0, 1])
    needed = {source.episodes[0].data_file, *(s.file for s in source.episodes[0].videos.values())}
    downloaded = {str(p.relative_to(source.root)) for p in source.root.rglob("*") if p.is_file()}
    assert needed <= downloaded
    assert not any(p.startswith(("data/", "videos/")) and p not in needed | {
        source.episodes[1].data_file, *(s.file for s in source.episodes[1].videos.values())
    } for p in downloaded)  # fmt: skip
    result = convert("lerobot/pusht", str(tmp_path / "out"), ConvertConfig(episodes=(0, 1)))
    assert result.manifest.source.revision is not None
    assert verify(str(tmp_path / "out")).ok
