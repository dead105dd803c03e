"""fsspec helpers shared by the converter and the reader: one code path for local, ``s3://`` and ``hf://``."""

from __future__ import annotations

import hashlib
import os
import posixpath
import uuid
from collections.abc import Mapping
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

StorageOptions = Mapping[str, Any]


class HiddenOptions:
    """Storage options (which may hold credentials) that never print or serialise.

    datatrove writes its pipeline steps to ``executor.json`` with ``str()`` for unknown objects: this
    wrapper keeps keys and tokens out of that file, of logs and of reprs.
    """

    __slots__ = ("options",)

    def __init__(self, options: StorageOptions | None) -> None:
        self.options = dict(options or {})

    def __repr__(self) -> str:
        return f"<storage options: {len(self.options)} hidden>"

    __str__ = __repr__


_HASH_CHUNK_BYTES = 8 << 20  # 8 MiB reads: large enough to stream at disk/network speed


def url_to_fs(
    url: str, storage_options: StorageOptions | None = None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and the protocol-less path of ``url`` (a local path or any fsspec URL)."""
    fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    return fs, path


def join(url: str, *parts: str) -> str:
    """Join path parts onto a URL or local path with ``/`` (never the OS separator for remote URLs)."""
    if "://" in url:
        return posixpath.join(url.rstrip("/"), *parts)
    return os.path.join(url, *parts)


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def exists(url: str, storage_options: StorageOptions | None = None) -> bool:
    fs, path = url_to_fs(url, storage_options)
    return bool(fs.exists(path))


def read_bytes(
    url: str,
    storage_options: StorageOptions | None = None,
    *,
    start: int | None = None,
    end: int | None = None,
) -> bytes:
    """The whole object, or bytes ``[start, end)`` with one ranged read."""
    fs, path = url_to_fs(url, storage_options)
    if start is None and end is None:
        return bytes(fs.cat_file(path))
    return bytes(fs.cat_file(path, start=start, end=end))


def size_bytes(url: str, storage_options: StorageOptions | None = None) -> int:
    fs, path = url_to_fs(url, storage_options)
    return int(fs.size(path))


def sha256_file(url: str, storage_options: StorageOptions | None = None) -> str:
    """Hex sha256 of an object, streamed in chunks."""
    fs, path = url_to_fs(url, storage_options)
    digest = hashlib.sha256()
    with fs.open(path, "rb", block_size=_HASH_CHUNK_BYTES) as f:
        while chunk := f.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def move_file(local_path: str, url: str, storage_options: StorageOptions | None = None) -> None:
    """Publish a finished local file at ``url`` so that readers never see a partial object.

    Local destination: rename (atomic on POSIX; the staging folder sits beside the destination, so no
    copy). Object stores: one put, visible only once complete (multipart for large files), then the
    local file is deleted.
    """
    fs, path = url_to_fs(url, storage_options)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    if isinstance(fs, LocalFileSystem):
        os.replace(local_path, path)
    else:
        fs.put_file(local_path, path)
        os.remove(local_path)


def write_bytes(data: bytes, url: str, storage_options: StorageOptions | None = None) -> None:
    """Write a small object atomically (same guarantee as :func:`put_file`)."""
    fs, path = url_to_fs(url, storage_options)
    if isinstance(fs, LocalFileSystem):
        fs.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    else:
        fs.pipe_file(path, data)


def remove(url: str, storage_options: StorageOptions | None = None, *, recursive: bool = False) -> None:
    """Delete an object or folder if it exists."""
    fs, path = url_to_fs(url, storage_options)
    if fs.exists(path):
        fs.rm(path, recursive=recursive)
