"""storage.is_transient: which failures RangeReader retries, for every library in a read's stack.

Each error is raised by the filesystem's ``cat_file`` itself (a memory:// object), so the whole
retry loop runs; attempts are counted, and the backoff is a few milliseconds.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import botocore.exceptions as boto
import fsspec
import pytest
import requests
import urllib3.exceptions
from fsspec.implementations.memory import MemoryFileSystem
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from multidict import CIMultiDict, CIMultiDictProxy
from s3fs.errors import translate_boto_error
from yarl import URL

from lerobot_wds.storage import RetryPolicy, is_transient, read_range

URL_ = "memory://lerobot-wds-transient/object.bin"
DATA = bytes(range(100))
TINY_BACKOFF = RetryPolicy(max_attempts=4, initial_backoff_s=0.001, max_backoff_s=0.002)


def s3_error(status: int, code: str) -> boto.ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return boto.ClientError(response, "GetObject")


def aiohttp_status(status: int) -> aiohttp.ClientResponseError:
    url = URL("http://127.0.0.1/object.bin")
    info = aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)
    return aiohttp.ClientResponseError(info, (), status=status, message="")


def hub_status(status: int) -> HfHubHTTPError:
    # duck-typed response: huggingface_hub's HTTP client moved from requests to httpx to httpx2
    return HfHubHTTPError(f"{status}", response=SimpleNamespace(status_code=status, headers={}, request=None))


def requests_status(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status}", response=response)


TRANSIENT: dict[str, Callable[[], BaseException]] = {
    "connection-reset": lambda: ConnectionResetError(errno.ECONNRESET, "reset by peer"),
    "connection-refused": lambda: ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    "connection-aborted": lambda: ConnectionAbortedError(errno.ECONNABORTED, "aborted"),
    "oserror-econnreset": lambda: OSError(errno.ECONNRESET, "reset"),
    "timeout": lambda: TimeoutError("timed out"),
    "fsspec-timeout": lambda: fsspec.exceptions.FSTimeoutError(),
    "aiohttp-disconnected": lambda: aiohttp.ServerDisconnectedError(),
    "aiohttp-oserror": lambda: aiohttp.ClientOSError(errno.ECONNRESET, "reset"),
    "aiohttp-timeout": lambda: aiohttp.ServerTimeoutError("read timeout"),
    "aiohttp-payload": lambda: aiohttp.ClientPayloadError("response payload is not completed"),
    "aiohttp-503": lambda: aiohttp_status(503),
    "aiohttp-429": lambda: aiohttp_status(429),
    "botocore-endpoint": lambda: boto.EndpointConnectionError(endpoint_url="http://127.0.0.1"),
    "botocore-read-timeout": lambda: boto.ReadTimeoutError(endpoint_url="http://127.0.0.1"),
    "botocore-connect-timeout": lambda: boto.ConnectTimeoutError(endpoint_url="http://127.0.0.1"),
    "botocore-closed": lambda: boto.ConnectionClosedError(endpoint_url="http://127.0.0.1"),
    "s3-slowdown-503": lambda: s3_error(503, "SlowDown"),
    "s3-internal-500": lambda: s3_error(500, "InternalError"),
    "aws-throttling-400": lambda: s3_error(400, "ThrottlingException"),
    # what s3fs raises once its own retries give up: OSError(EBUSY/EREMOTEIO) from the ClientError
    "s3fs-slowdown": lambda: translate_boto_error(s3_error(503, "SlowDown")),
    "s3fs-unknown-502": lambda: translate_boto_error(s3_error(502, "BadGateway")),
    "urllib3-read-timeout": lambda: urllib3.exceptions.ReadTimeoutError(
        None, "/object.bin", "read timed out"
    ),
    "urllib3-connect-timeout": lambda: urllib3.exceptions.ConnectTimeoutError("connect timed out"),
    "urllib3-protocol": lambda: urllib3.exceptions.ProtocolError("Connection aborted."),
    "requests-connection": lambda: requests.ConnectionError("connection aborted"),
    "requests-read-timeout": lambda: requests.ReadTimeout("read timed out"),
    "requests-503": lambda: requests_status(503),
    "hub-503": lambda: hub_status(503),
    "hub-429": lambda: hub_status(429),
}

PERMANENT: dict[str, Callable[[], BaseException]] = {
    "file-not-found": lambda: FileNotFoundError(errno.ENOENT, "no such object"),
    "permission": lambda: PermissionError(errno.EACCES, "denied"),
    "botocore-no-credentials": lambda: boto.NoCredentialsError(),
    "botocore-partial-credentials": lambda: boto.PartialCredentialsError(provider="env", cred_var="secret"),
    "s3-access-denied-403": lambda: s3_error(403, "AccessDenied"),
    "s3-signature-403": lambda: s3_error(403, "SignatureDoesNotMatch"),
    "s3-no-such-key-404": lambda: s3_error(404, "NoSuchKey"),
    "s3fs-access-denied": lambda: translate_boto_error(s3_error(403, "AccessDenied")),  # PermissionError
    "s3fs-signature": lambda: translate_boto_error(s3_error(403, "SignatureDoesNotMatch")),
    "s3fs-unknown-403": lambda: translate_boto_error(s3_error(403, "NotAnS3Code")),  # OSError(EIO) from it
    "aiohttp-403": lambda: aiohttp_status(403),
    "aiohttp-404": lambda: aiohttp_status(404),
    "requests-403": lambda: requests_status(403),
    "hub-401": lambda: hub_status(401),
    "hub-404": lambda: hub_status(404),
    "hub-offline": lambda: OfflineModeIsEnabled("HF_HUB_OFFLINE=1"),  # a ConnectionError subclass
    "oserror-eio": lambda: OSError(errno.EIO, "unknown"),
    "value-error": lambda: ValueError("a bug, not the network"),
}


class FailingReads:
    """Makes memory:// ``cat_file`` raise the given errors first, then read; counts the calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, errors: list[BaseException]) -> None:
        self.attempts = 0
        original = MemoryFileSystem.cat_file

        def cat_file(fs: MemoryFileSystem, path: str, *args: Any, **kwargs: Any) -> bytes:
            self.attempts += 1
            if self.attempts <= len(errors):
                raise errors[self.attempts - 1]
            return bytes(original(fs, path, *args, **kwargs))

        fsspec.filesystem("memory").pipe_file(URL_, DATA)
        monkeypatch.setattr(MemoryFileSystem, "cat_file", cat_file)


@pytest.mark.parametrize("make_error", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_transient_errors_are_retried(
    monkeypatch: pytest.MonkeyPatch, make_error: Callable[[], BaseException]
) -> None:
    assert is_transient(make_error())
    reads = FailingReads(monkeypatch, [make_error(), make_error()])
    assert read_range(URL_, start=10, end=60, retry=TINY_BACKOFF) == DATA[10:60]
    assert reads.attempts == 3


@pytest.mark.parametrize("make_error", PERMANENT.values(), ids=PERMANENT.keys())
def test_permanent_errors_fail_at_once(
    monkeypatch: pytest.MonkeyPatch, make_error: Callable[[], BaseException]
) -> None:
    error = make_error()
    assert not is_transient(error)
    reads = FailingReads(monkeypatch, [error])
    with pytest.raises(type(error)) as raised:
        read_range(URL_, start=10, end=60, retry=TINY_BACKOFF)
    assert raised.value is error
    assert reads.attempts == 1


def test_retries_stop_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = FailingReads(monkeypatch, [ConnectionResetError("reset")] * 10)
    with pytest.raises(OSError, match=r"failed 4 times \(the retry limit\)"):
        read_range(URL_, start=0, end=10, retry=TINY_BACKOFF)
    assert reads.attempts == TINY_BACKOFF.max_attempts


def test_a_cause_chain_that_loops_ends() -> None:
    first, second = OSError(errno.EIO, "a"), OSError(errno.EIO, "b")
    first.__cause__, second.__cause__ = second, first
    assert not is_transient(first)
