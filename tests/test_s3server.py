"""The test S3 server itself: a port taken between choosing it and the server binding it (another server
starting at the same moment) does not fail the run."""

from __future__ import annotations

import socket
from pathlib import Path

import s3fs
from s3server import SeaweedFS


def test_a_port_taken_before_the_first_start_is_chosen_again(tmp_path: Path) -> None:
    server = SeaweedFS(tmp_path)
    taken = int(server.endpoint.rsplit(":", 1)[1])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", taken))
        blocker.listen()
        try:
            server.start()
            assert server.endpoint != f"http://127.0.0.1:{taken}"
            fs = s3fs.S3FileSystem(**server.options, skip_instance_cache=True)
            fs.mkdir("ports")
            fs.pipe("ports/x", b"answered")
            assert fs.cat("ports/x") == b"answered"
        finally:
            server.kill()
