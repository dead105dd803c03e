"""A stand-in for a Hub dataset repo on an S3 bucket, and a probe of a staging folder's shards.

Used by tests/converter/test_hub_staging.py and scripts/bench_hub_staging.py: :class:`BucketHub` answers
the ``HfApi`` calls publishing makes (``converter/hub.py``) on a bucket, so ``convert(..., "hf://datasets/...")``
runs whole without the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any


class BucketHub:
    """The ``HfApi`` methods publishing calls, on ``root`` in a bucket: pre-uploaded LFS objects under
    ``.lfs/<sha256>``, a commit writes its files in order; ``fail_commit``: that commit (1-based) fails."""

    def __init__(self, fs: Any, root: str, fail_commit: int | None = None) -> None:
        self.fs, self.root, self.fail_commit = fs, root, fail_commit
        self.commits: list[list[str]] = []
        self.preuploaded: list[str] = []

    def create_repo(self, repo_id: str, **_: Any) -> None:
        pass

    def preupload_lfs_files(self, repo_id: str, *, additions: list[Any], **_: Any) -> None:
        for operation in additions:
            sha256 = operation.upload_info.sha256.hex()
            self.fs.pipe_file(f"{self.root}/.lfs/{sha256}", Path(operation.path_or_fileobj).read_bytes())
            operation._is_uploaded = True
            operation.path_or_fileobj = b""  # as huggingface_hub frees it after the upload
            self.preuploaded.append(operation.path_in_repo)

    def create_commit(self, repo_id: str, *, operations: list[Any], **_: Any) -> None:
        if self.fail_commit == len(self.commits) + 1:
            raise ConnectionError("the stand-in Hub went away")
        for operation in operations:
            if operation._is_uploaded:
                data = self.fs.cat_file(f"{self.root}/.lfs/{operation.upload_info.sha256.hex()}")
            elif isinstance(operation.path_or_fileobj, bytes):
                data = operation.path_or_fileobj
            else:
                data = Path(operation.path_or_fileobj).read_bytes()
            self.fs.pipe_file(f"{self.root}/{operation.path_in_repo}", data)
        self.commits.append([operation.path_in_repo for operation in operations])

    def list_repo_tree(self, repo_id: str, *, path_in_repo: str, **_: Any) -> list[Any]:
        found = self.fs.find(f"{self.root}/{path_in_repo}", detail=True)
        return [
            SimpleNamespace(
                path=name.removeprefix(f"{self.root}/"),
                size=int(info["size"]),
                lfs=SimpleNamespace(sha256=hashlib.sha256(self.fs.cat_file(name)).hexdigest()),
            )
            for name, info in found.items()
        ]


class StagedShards:
    """The most shard files (finished in shards/, or being written) staging held, sampled every 5 ms."""

    def __init__(self, staging: Path) -> None:
        self.staging, self.peak_files, self.peak_bytes = staging, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            files = [  # os.walk skips folders removed meanwhile
                Path(folder, name)
                for folder, _, names in os.walk(self.staging)
                for name in names
                if name.endswith((".tar", ".tar.partial"))
            ]
            sizes = []
            for path in files:
                with contextlib.suppress(FileNotFoundError):  # uploaded and deleted, or renamed, meanwhile
                    sizes.append(path.stat().st_size)
            self.peak_files = max(self.peak_files, len(sizes))
            self.peak_bytes = max(self.peak_bytes, sum(sizes))

    def __enter__(self) -> StagedShards:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
