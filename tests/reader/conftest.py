"""Converted fixtures shared by the reader tests (converted once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import DATA, FIXTURES

from lerobot_wds import ConvertConfig, convert

# multi and h264 with small shards: several shards, episodes read by ranged reads across them.
SHARD_SIZE_MB = {"tiny": 256.0, "multi": 0.4, "h264": 0.3}


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("reader-converted")
    urls = {}
    for name in FIXTURES:
        convert(str(DATA / name), str(out / name), ConvertConfig(shard_size_mb=SHARD_SIZE_MB[name]))
        urls[name] = str(out / name)
    return urls


def fixture_path(name: str) -> Path:
    return DATA / name
