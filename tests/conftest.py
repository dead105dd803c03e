"""Shared pytest fixtures: writable fixture copies and a real S3 server (SeaweedFS) on 127.0.0.1.

Fixture provenance: written by LeRobot 0.6.1's LeRobotDataset writer; values encode (episode, frame, camera).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import DATA
from s3server import seaweedfs

pytest_plugins = ["require_lerobot"]  # CI: a skipped LeRobot test fails (require_lerobot.py)


@pytest.fixture
def fixture_copy(tmp_path: Path):
    """A writable copy of a fixture dataset, for tests that break it on purpose."""

    def copy(name: str) -> Path:
        target = tmp_path / f"src-{name}"
        shutil.copytree(DATA / name, target)
        return target

    return copy


# ------------------------------------------------------------------------- a real S3 server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """SeaweedFS on 127.0.0.1 for the whole session; yields s3fs storage options (see s3server.py)."""
    try:
        with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as options:
            yield options
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def s3_bucket(s3_server: dict[str, Any]) -> str:
    """A fresh, empty bucket for one test."""
    import s3fs

    name = f"test-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**s3_server).mkdir(name)
    return name
