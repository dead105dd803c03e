"""fsspec helpers shared by the converter and the reader: one code path for local, ``s3://`` and ``hf://``."""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import posixpath
import random
import sys
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import fsspec
import fsspec.asyn
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

logger = logging.getLogger(__name__)

StorageOptions = Mapping[str, Any]
T = TypeVar("T")


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


def redact(url: str) -> str:
    """``url`` as it may appear in a message: without the password of ``scheme://user:pass@host`` and
    without a query string (presigned URLs carry their signature there). Options passed as
    ``storage_options`` never reach messages at all."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        user = authority.rpartition("@")[0].partition(":")[0]
        authority = f"{user}:***@{authority.rpartition('@')[2]}"
    path, question, _ = path.partition("?")
    return f"{scheme}://{authority}{slash}{path}{'?***' if question else ''}"


_HASH_CHUNK_BYTES = 8 << 20  # 8 MiB reads: large enough to stream at disk/network speed


def url_to_fs(
    url: str, storage_options: StorageOptions | None = None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and the protocol-less path of ``url`` (a local path or any fsspec URL)."""
    fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    return fs, path


def _forget_parent_sessions() -> None:
    """In a forked child (a DataLoader worker): let go of the async filesystems (s3, http, hf) that the
    parent made, without closing their sessions.

    fsspec drops its cached instances when it sees a new pid, so they are collected here, and their
    finalizers would close the parent's connections from this process, on the parent's event loop (a
    copy that runs nowhere): aiobotocore then logs ``Task exception was never retrieved ... attached to a
    different loop`` tracebacks, and closing would shut down sockets this process shares with the parent.
    They are kept referenced (never collected here, so aiohttp does not warn of unclosed sessions either);
    each worker makes its own filesystem on first use.
    """
    for finalizer in list(weakref.finalize._registry):  # type: ignore[attr-defined]
        owner = finalizer.peek()
        if owner is not None and isinstance(owner[0], fsspec.asyn.AsyncFileSystem):
            finalizer.detach()
            _PARENT_FILESYSTEMS.append(owner[0])


_PARENT_FILESYSTEMS: list[fsspec.AbstractFileSystem] = []


os.register_at_fork(after_in_child=_forget_parent_sessions)


def arrow_buffer(data: bytes) -> pa.Buffer:
    """``data`` copied into memory that Arrow owns, for ``pq.read_table``.

    Over Python-owned bytes (``io.BytesIO``, ``pa.BufferReader(bytes)``), ``read_table`` leaves the last
    reference to them to one of Arrow's pool threads, which releases it after the call returns and needs
    the GIL for that: when this happens while the interpreter exits, the thread is torn down through C++
    frames that may not unwind, and the process aborts (``terminate called without an active exception``,
    status 134; apache/arrow#34314). Measured: ``lerobot-wds inspect`` aborted in 3 of 12 runs; with this
    copy, 0 of 30.
    """
    stream = pa.BufferOutputStream()
    stream.write(data)
    return stream.getvalue()


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
    retry: RetryPolicy | None = None,
) -> bytes:
    """The whole object, or bytes ``[start, end)`` with one ranged read. With ``retry``, transient
    failures are retried and the read is bounded by its ``timeout_s`` (see :class:`RangeReader`)."""
    fs, path = url_to_fs(url, storage_options)
    if retry is not None:
        reader = RangeReader(url, storage_options, retry=retry)
        return bytes(reader.request("cat_file", path, start=start, end=end, what="read"))
    if start is None and end is None:
        return bytes(fs.cat_file(path))
    return bytes(fs.cat_file(path, start=start, end=end))


def read_many(
    urls: list[str], storage_options: StorageOptions | None = None, *, retry: RetryPolicy | None = None
) -> dict[str, bytes | None]:
    """Several whole objects of one filesystem, fetched concurrently where the filesystem is async
    (s3, http, hf): one round trip instead of one per object. Missing objects map to None; any other
    failure raises, after the retries of ``retry`` (None: ``RetryPolicy()``) for transient ones, so
    that a flaky server never makes an object look missing."""
    paths = {url: url_to_fs(url, storage_options)[1] for url in urls}

    def fetch(fs: fsspec.AbstractFileSystem, left_s: float | None) -> dict[str, Any]:
        found = _call(fs, "cat", left_s, list(paths.values()), on_error="return")
        for value in found.values():
            if isinstance(value, Exception) and not isinstance(value, FileNotFoundError):
                raise value
        return found

    reader = RangeReader(urls[0], storage_options, retry=retry or RetryPolicy())
    found = reader.request_with(fetch, what=f"read of {len(urls)} objects")
    return {url: _found_bytes(found.get(path)) for url, path in paths.items()}


def _found_bytes(value: Any) -> bytes | None:
    return None if value is None or isinstance(value, Exception) else bytes(value)


def size_bytes(
    url: str, storage_options: StorageOptions | None = None, *, retry: RetryPolicy | None = None
) -> int:
    """The object's size; with ``retry``, transient failures are retried within its bounds (a reader's
    size request must not hang where its reads would not)."""
    fs, path = url_to_fs(url, storage_options)
    try:
        if retry is not None:
            return RangeReader(url, storage_options, retry=retry).object_size()
        return int(fs.size(path))
    except FileNotFoundError:  # fsspec's message is the raw path: for http(s), with its password
        raise FileNotFoundError(f"{redact(url)}: missing") from None


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
    """Write a small object atomically (same guarantee as :func:`move_file`)."""
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
    are retried (see :func:`is_transient`); the failed block is fetched again from its first byte (a
    :func:`read_range` is one block, so the whole range). Missing objects, denied access and missing
    credentials fail at once.

    ``timeout_s`` bounds one block's read, every attempt and backoff included: past it the read raises
    ``TimeoutError`` instead of waiting on. Without it a hung server (connections accepted, no byte
    answered) holds a read for hours on s3fs' defaults: each socket read times out after 15 s, but
    botocore (5 attempts) and s3fs (two nested loops of 5) retry it about 125 times, and this policy's
    attempts multiply that (measured: still waiting after 600 s, a new connection every ~16 s); a
    DataLoader waits on that read. The bound applies to async filesystems (``s3://``, ``gs://``,
    ``http(s)://``: the request is cancelled at the deadline); ``hf://`` reads keep huggingface_hub's own
    timeouts and local reads are not bounded. ``None``: no bound.
    """

    max_attempts: int = 8  # consecutive failures of one read before giving up
    initial_backoff_s: float = 0.25  # S3 guidance: start around 100-500 ms
    max_backoff_s: float = 8.0  # 0.25 * 2**5: eight attempts span about half a minute
    # A block is at most prefetch_bytes / prefetch_threads = 16 MiB by default: 120 s still lets it
    # through at 140 kB/s, and leaves room for the whole backoff schedule (<= 24 s) plus several of
    # s3fs' 15 s stalled-socket timeouts, each of which s3fs retries on a new connection.
    timeout_s: float | None = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts: got {self.max_attempts}; expected >= 1")
        if not 0 <= self.initial_backoff_s <= self.max_backoff_s:
            raise ValueError("RetryPolicy: expected 0 <= initial_backoff_s <= max_backoff_s")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ValueError(f"RetryPolicy.timeout_s: got {self.timeout_s}; expected > 0 or None")

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.max_backoff_s, self.initial_backoff_s * 2**attempt))


# Transient failures, by an explicit list: anything not on it fails at once, so that an error no
# library translated (botocore's NoCredentialsError reaches the retry loop as it is) is not retried for
# half a minute before the user sees it.
# Request timeout, too many requests, server errors (not 501 Not Implemented, 505 HTTP Version).
_TRANSIENT_STATUS = frozenset({408, 429, *range(500, 600)} - {501, 505})
_TRANSIENT_S3_CODES = frozenset(
    {"InternalError", "RequestTimeout", "ServiceUnavailable", "SlowDown", "Throttling", "ThrottlingException"}
)
_NETWORK_ERRNOS = frozenset(
    {errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT}
    | {errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTUNREACH}
)
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
# Optional libraries' errors, as (module, class names). Exceptions that subclass a transient one but
# are not (a bad certificate, no credentials, offline mode) are listed as permanent.
_PERMANENT_LIBRARY_ERRORS = (
    ("aiohttp", ("ClientSSLError", "InvalidURL")),
    ("botocore.exceptions", ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError")),
    ("botocore.exceptions", ("SSLError", "NoRegionError")),
    ("huggingface_hub.errors", ("OfflineModeIsEnabled",)),
    ("requests.exceptions", ("SSLError",)),
    ("urllib3.exceptions", ("SSLError",)),
)
_TRANSIENT_LIBRARY_ERRORS = (
    # aiohttp (s3fs, fsspec http): resets, refusals, timeouts, a body cut short
    ("aiohttp", ("ClientConnectionError", "ClientPayloadError")),
    # botocore: EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError
    ("botocore.exceptions", ("ConnectionError", "HTTPClientError")),
    ("urllib3.exceptions", ("TimeoutError", "ProtocolError")),  # read/connect timeouts, aborted
    ("requests.exceptions", ("ConnectionError", "Timeout", "ChunkedEncodingError")),
    # huggingface_hub's HTTP client: httpx, or its fork httpx2 (huggingface_hub 2.x)
    ("httpx", ("TimeoutException", "NetworkError", "RemoteProtocolError")),
    ("httpx2", ("TimeoutException", "NetworkError", "RemoteProtocolError")),
    ("http.client", ("IncompleteRead",)),
)


def _loaded_classes(names: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[type, ...]:
    """The named classes of the modules already imported. An exception of a library's type can only
    exist once that library is loaded, so nothing is imported here (s3fs, aiohttp are optional)."""
    found = []
    for module_name, class_names in names:
        module = sys.modules.get(module_name)
        for class_name in class_names:
            cls = getattr(module, class_name, None)
            if isinstance(cls, type):
                found.append(cls)
    return tuple(found)


def _http_status(exc: BaseException) -> tuple[int | None, str | None]:
    """The HTTP status and S3 error code an HTTP error carries, as the libraries surface them."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):  # botocore ClientError: {"Error": {"Code"}, "ResponseMetadata"}
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status, response.get("Error", {}).get("Code")
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None and isinstance(exc, aiohttp.ClientResponseError):
        return exc.status, None
    status = getattr(response, "status_code", None)  # requests, httpx, huggingface_hub HfHubHTTPError
    return (status, None) if isinstance(status, int) else (None, None)


def _verdict(exc: BaseException) -> bool | None:
    """True: transient; False: permanent; None: this exception does not say (ask its cause)."""
    if isinstance(exc, (*_PERMANENT, *_loaded_classes(_PERMANENT_LIBRARY_ERRORS))):
        return False
    status, code = _http_status(exc)
    if code in _TRANSIENT_S3_CODES:  # by code first: AWS sends ThrottlingException with status 400
        return True
    if status is not None:
        return status in _TRANSIENT_STATUS
    if code is not None:  # AccessDenied, InvalidAccessKeyId, NoSuchKey, ...
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):  # builtins: resets, refusals, asyncio timeouts
        return True
    if isinstance(exc, _loaded_classes(_TRANSIENT_LIBRARY_ERRORS)):
        return True
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return True
    return None


def is_transient(exc: BaseException) -> bool:
    """A failure worth retrying: a network error, a timeout, throttling (429, S3 SlowDown) or a 5xx.

    Missing objects, denied access and missing credentials fail at once, and so does anything not
    known to be transient. An exception that does not say either way (s3fs turns S3 errors into a
    plain ``OSError`` raised from the original) is judged by its ``__cause__``.
    """
    seen: BaseException | None = exc
    for _ in range(8):  # a bounded walk: cause chains are short, and may loop
        if seen is None:
            return False
        verdict = _verdict(seen)
        if verdict is not None:
            return verdict
        seen = seen.__cause__
    return False


class RangeReader(io.RawIOBase):
    """Reads bytes ``[start, end)`` of one object front to back in blocks, surviving transient failures.

    Each block is one ranged GET (``cat_file``: no HEAD request, unlike ``fs.open``, which asks for the
    object's details on every open). A failed block is retried from its first byte, which is where the
    previous block ended, so no byte is lost or repeated. ``end=None`` reads to the end of the object
    (its ``size`` if given, else one size request).
    """

    def __init__(
        self,
        url: str,
        storage_options: StorageOptions | None = None,
        *,
        start: int = 0,
        end: int | None = None,
        size: int | None = None,
        retry: RetryPolicy | None = None,
        block_bytes: int = 16 << 20,
    ) -> None:
        self.url = url
        self._fs, self._path = url_to_fs(url, storage_options)
        self._position = start
        self._end = end if end is not None else size
        self._retry = retry or RetryPolicy()
        self._block_bytes = block_bytes
        self._block = memoryview(b"")  # fetched, not yet consumed
        self._rng = random.Random()
        self.retries = 0  # transient failures absorbed so far

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        if not self._block:
            self._block = memoryview(self._fetch_block())
        count = min(len(buffer), len(self._block))
        buffer[:count] = self._block[:count]
        self._block = self._block[count:]
        self._position += count
        return count

    def read_block(self) -> bytes:
        """The next block whole (no copy); empty at the end."""
        if self._block:
            raise ValueError(
                f"{redact(self.url)}: read_block after a partial read; expected block-aligned reads"
            )
        block = self._fetch_block()
        self._position += len(block)
        return block

    def object_size(self) -> int:
        """The whole object's size (one request, retried as reads are)."""
        return int(self.request("size", self._path, what="size request"))

    def request(self, method: str, *args: Any, what: str, **kwargs: Any) -> Any:
        """``fs.<method>(*args, **kwargs)`` on this object's filesystem, retried and bounded as reads are."""
        return self._with_retries(lambda left_s: _call(self._fs, method, left_s, *args, **kwargs), what)

    def request_with(self, call: Callable[[Any, float | None], T], *, what: str) -> T:
        """``call(fs, left_s)``, retried and bounded as reads are; ``left_s`` is the time left (or None)."""
        return self._with_retries(lambda left_s: call(self._fs, left_s), what)

    def _fetch_block(self) -> bytes:
        if self._end is None:
            self._end = self.object_size()
        block_end = min(self._position + self._block_bytes, self._end)
        if block_end <= self._position:
            return b""
        start = self._position
        data = self._with_retries(
            lambda left_s: _call(self._fs, "cat_file", left_s, self._path, start=start, end=block_end)
        )
        if len(data) != block_end - self._position:
            raise EOFError(
                f"{redact(self.url)}: got {len(data)} bytes at byte {self._position}; expected "
                f"{block_end - self._position} (the object is shorter than the manifest says)"
            )
        return bytes(data)

    def _with_retries(self, call: Callable[[float | None], T], what: str = "") -> T:
        what = what or f"read at byte {self._position}"
        timeout_s = self._retry.timeout_s
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for attempt in range(self._retry.max_attempts):
            # at least 1 ms: fsspec's sync treats a timeout of 0 as none
            left_s = None if deadline is None else max(deadline - time.monotonic(), 1e-3)
            try:
                return call(left_s)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    attempts = f"{attempt + 1} attempt{'s' if attempt else ''}"
                    raise TimeoutError(
                        f"{redact(self.url)}: {what} did not finish within RetryPolicy.timeout_s={timeout_s} "
                        f"s ({attempts}; last error: {exc!r}); expected a storage that answers; raise "
                        "timeout_s for a slow link"
                    ) from exc
                if attempt + 1 == self._retry.max_attempts:
                    raise OSError(
                        f"{redact(self.url)}: read at byte {self._position} failed {attempt + 1} times "
                        f"(the retry limit); last error: {exc!r}"
                    ) from exc
                self.retries += 1
                logger.warning(
                    "%s: transient read failure at byte %d (%r); retrying",
                    redact(self.url),
                    self._position,
                    exc,
                )
                pause_s = self._retry.backoff_s(attempt, self._rng)
                if deadline is not None:  # the last attempt still gets its try, however short
                    pause_s = min(pause_s, max(deadline - time.monotonic() - 0.01, 0.0))
                time.sleep(pause_s)
        raise AssertionError("unreachable: the loop returns or raises")


def _call(fs: Any, method: str, left_s: float | None, *args: Any, **kwargs: Any) -> Any:
    """``fs.<method>(*args, **kwargs)``, cancelled after ``left_s`` seconds on an async filesystem
    (fsspec's ``sync`` wraps the coroutine in ``asyncio.wait_for`` and raises ``FSTimeoutError``)."""
    if left_s is None or not getattr(fs, "async_impl", False):
        return getattr(fs, method)(*args, **kwargs)
    coroutine = getattr(fs, f"_{method}")
    return fsspec.asyn.sync(fs.loop, coroutine, *args, timeout=left_s, **kwargs)


def read_range(
    url: str,
    storage_options: StorageOptions | None = None,
    *,
    start: int,
    end: int,
    retry: RetryPolicy | None = None,
) -> bytes:
    """Bytes ``[start, end)`` of an object with one ranged GET, retrying transient failures
    (see :class:`RangeReader`)."""
    reader = RangeReader(url, storage_options, start=start, end=end, retry=retry, block_bytes=end - start)
    return reader.read_block()


# 16 MiB: one GET amortises S3's ~50 ms first byte to under a third at ~100 MB/s per connection, and a
# task holds about one such range per file it reads (an mp4 per camera, a parquet file).
_MAX_RANGE_BYTES = 16 << 20
# 64 KiB: LeRobot mp4s' moov (3-50 KiB in the fixtures, g1's 480x640 AV1 included) and parquet footers are
# read without read-ahead (bench_remote_source.py's breakdown); PyAV asks 4 KiB at a time (segment.py).
_READ_AHEAD_AFTER_BYTES = 64 << 10


class RangedFile(io.RawIOBase):
    """A seekable, read-only view of one object that downloads only the bytes read, by ranged GETs.

    Made for readers that seek through an index (PyAV's mp4 demuxer, pyarrow's parquet reader): they
    read a header, then the parts an index points to. ``plan(ranges)`` names the byte ranges the caller
    is about to read (an episode's packets, a row group's column chunks): the first read touching one
    fetches the whole range in one GET, and drops the bytes of the planned range fetched before it
    (memory stays about one range). Touching ranges are merged up to ``max_range_bytes`` (small
    episodes share a GET); a planned range's GET starts after bytes already held (a header read before
    ``plan``). A read outside every planned range fetches the bytes asked for, more once such reads
    have continued each other past 64 KiB (a large moov). A held byte is never fetched again (only a
    planned range dropped for a later one is, if read again); ``close`` drops what is held.
    ``readinto`` fills its buffer whole (pyarrow needs it), ``read1`` returns what one extent holds
    (PyAV takes short reads: none past a planned range's end).
    ``downloaded_bytes`` counts every byte fetched; each GET is retried as :func:`read_range` does.
    """

    def __init__(
        self,
        url: str,
        storage_options: StorageOptions | None = None,
        *,
        size: int | None = None,
        retry: RetryPolicy | None = None,
        max_range_bytes: int = _MAX_RANGE_BYTES,
    ) -> None:
        self.url = url
        self._options = storage_options
        self._max_range_bytes = max_range_bytes
        self._retry = retry
        self._size = size
        self._position = 0
        self._planned: list[tuple[int, int]] = []  # sorted, disjoint
        self._extents: dict[int, bytes] = {}  # start -> fetched bytes (disjoint)
        self._planned_start: int | None = None  # the planned range held in _extents
        self._run = 0  # bytes fetched by the run of unplanned reads continuing each other
        self._unplanned_end = -1  # where it ended
        self.downloaded_bytes = 0
        self.num_requests = 0

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = size_bytes(self.url, self._options, retry=self._retry or RetryPolicy())
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"{redact(self.url)}: seek to {base + offset}; expected a position >= 0")
        self._position = base + offset
        return self._position

    def plan(self, ranges: list[tuple[int, int]]) -> None:
        """Byte ranges ``[start, end)`` about to be read, each fetched whole by its first read; overlaps
        are cut at the later range's start, then touching ranges merged up to ``max_range_bytes``."""
        cut: list[tuple[int, int]] = []
        for start, end in sorted(r for r in ranges if r[1] > r[0]):
            if cut and start < cut[-1][1]:
                cut[-1] = (cut[-1][0], start)
                if cut[-1][1] <= cut[-1][0]:
                    cut.pop()
            cut.append((start, end))
        merged: list[tuple[int, int]] = []
        for start, end in cut:
            if merged and merged[-1][1] == start and end - merged[-1][0] <= self._max_range_bytes:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        self._planned = merged

    def close(self) -> None:
        """Drop the fetched bytes (``downloaded_bytes`` and ``num_requests`` stay readable)."""
        self._extents.clear()
        self._planned = []
        self._planned_start = None
        super().close()

    def readinto(self, buffer: Any) -> int:
        """Fills ``buffer`` whole unless the object ends first (pyarrow and PyAV expect full reads)."""
        view = memoryview(buffer).cast("B")
        count = 0
        while count < len(view) and self._position < self.size:
            chunk = self._bytes_at(self._position, len(view) - count)
            view[count : count + len(chunk)] = chunk
            count += len(chunk)
            self._position += len(chunk)
        return count

    def _bytes_at(self, position: int, wanted: int) -> memoryview:
        for start, data in self._extents.items():
            if start <= position < start + len(data):
                return memoryview(data)[position - start : position - start + wanted]
        for start, end in self._planned:
            if start <= position < end:
                start = self._held_until(start)  # a header read before plan() may hold its first bytes
                if self._planned_start is not None:
                    self._extents.pop(self._planned_start, None)
                self._planned_start = start
                return self._fetch(start, end)[position - start : position - start + wanted]
        # Unplanned reads (a header, an index) fetch what is asked; once a run of reads continuing each
        # other passes _READ_AHEAD_AFTER_BYTES, each miss fetches as much as the run holds: a small header
        # (an mp4's moov, a few KiB) costs no byte more than is read, a large one (a long recording's
        # moov, MBs) about log2(N) GETs and at most N bytes more.
        self._run = self._run if position == self._unplanned_end else 0
        ahead = self._run if self._run >= _READ_AHEAD_AFTER_BYTES else 0
        end = min(position + max(wanted, ahead), self.size)
        for start in [*self._extents, *(s for s, _ in self._planned)]:  # stop where known bytes begin
            if position < start < end:
                end = start
        self._run, self._unplanned_end = self._run + end - position, end
        return self._fetch(position, end)[:wanted]

    def read1(self, size: int = -1) -> bytes:
        """At most ``size`` bytes from one held or fetched extent: a read ending at the end of a planned
        range fetches nothing past it (for readers that take short reads, such as PyAV's avio)."""
        if self._position >= self.size:
            return b""
        wanted = self.size - self._position if size < 0 else size
        chunk = bytes(self._bytes_at(self._position, wanted))
        self._position += len(chunk)
        return chunk

    def _held_until(self, position: int) -> int:
        """The first byte from ``position`` on that no fetched extent holds."""
        while True:
            held = next((s + len(d) for s, d in self._extents.items() if s <= position < s + len(d)), None)
            if held is None:
                return position
            position = held

    def _fetch(self, start: int, end: int) -> memoryview:
        data = read_range(self.url, self._options, start=start, end=end, retry=self._retry)
        logger.debug("%s: fetched bytes %d-%d", redact(self.url), start, end)
        self._extents[start] = data
        self.downloaded_bytes += len(data)
        self.num_requests += 1
        return memoryview(data)
