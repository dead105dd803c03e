"""fsspec helpers shared by the converter and the reader: one code path for local, ``s3://`` and ``hf://``."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import posixpath
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

logger = logging.getLogger(__name__)

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


# ---------------------------------------------------------------------------- resilient reads


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Retries of transient read failures, with exponential backoff and full jitter.

    Connection resets, timeouts and 5xx/429 answers that the filesystem's own retries did not absorb
    are retried; a read resumes at the byte where it broke. Missing objects and denied access fail at
    once.
    """

    max_attempts: int = 8  # consecutive failures of one read before giving up
    initial_backoff_s: float = 0.25  # S3 guidance: start around 100-500 ms
    max_backoff_s: float = 8.0  # 0.25 * 2**5: eight attempts span about half a minute

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts: got {self.max_attempts}; expected >= 1")
        if not 0 <= self.initial_backoff_s <= self.max_backoff_s:
            raise ValueError("RetryPolicy: expected 0 <= initial_backoff_s <= max_backoff_s")

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.max_backoff_s, self.initial_backoff_s * 2**attempt))


_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def is_transient(exc: BaseException) -> bool:
    """A failure worth retrying: network-level errors, not a missing object or denied access."""
    if isinstance(exc, _PERMANENT):
        return False
    return isinstance(exc, (OSError, TimeoutError, ConnectionError, EOFError)) or type(
        exc
    ).__module__.startswith(("aiohttp", "botocore", "urllib3", "requests", "http.client"))


class RangeReader(io.RawIOBase):
    """Reads bytes ``[start, end)`` of one object front to back, surviving transient failures.

    The object is opened once with a large block size, so fsspec fetches it in a few big requests
    rather than one per read; after a failure it is reopened at the byte reached, so no byte is lost
    or repeated.
    """

    def __init__(
        self,
        url: str,
        storage_options: StorageOptions | None = None,
        *,
        start: int = 0,
        end: int | None = None,
        retry: RetryPolicy | None = None,
        block_bytes: int = 16 << 20,
    ) -> None:
        self.url = url
        self._fs, self._path = url_to_fs(url, storage_options)
        self._position = start
        self._end = end
        self._retry = retry or RetryPolicy()
        self._block_bytes = block_bytes
        self._file: Any = None
        self._rng = random.Random()
        self.retries = 0  # transient failures absorbed so far

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        wanted = len(buffer)
        if self._end is not None:
            wanted = min(wanted, self._end - self._position)
        if wanted <= 0:
            return 0
        for attempt in range(self._retry.max_attempts):
            try:
                if self._file is None:
                    self._file = self._fs.open(self._path, "rb", block_size=self._block_bytes)
                    self._file.seek(self._position)
                data = self._file.read(wanted)
                if not data and self._end is not None:
                    raise EOFError(f"object ended at byte {self._position}; expected {self._end}")
                break
            except Exception as exc:
                self._drop_file()
                if not is_transient(exc):
                    raise
                if attempt + 1 == self._retry.max_attempts:
                    raise OSError(
                        f"{self.url}: read at byte {self._position} failed {attempt + 1} times "
                        f"(the retry limit); last error: {exc!r}"
                    ) from exc
                self.retries += 1
                logger.warning(
                    "%s: transient read failure at byte %d (%r); retrying", self.url, self._position, exc
                )
                time.sleep(self._retry.backoff_s(attempt, self._rng))
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def _drop_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None

    def close(self) -> None:
        self._drop_file()
        super().close()


def read_range(
    url: str,
    storage_options: StorageOptions | None = None,
    *,
    start: int,
    end: int,
    retry: RetryPolicy | None = None,
) -> bytes:
    """Bytes ``[start, end)`` of an object, retrying transient failures (see :class:`RangeReader`)."""
    buffer = bytearray(end - start)
    view = memoryview(buffer)
    filled = 0
    with RangeReader(
        url, storage_options, start=start, end=end, retry=retry, block_bytes=max(end - start, 1)
    ) as r:
        while filled < len(buffer):
            count = r.readinto(view[filled:])
            if not count:
                raise EOFError(f"{url}: object ended at byte {start + filled}; expected {end}")
            filled += count
    return bytes(buffer)
