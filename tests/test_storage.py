"""storage.RangeReader against a real S3 server (SeaweedFS) through a fault-injecting loopback proxy."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import s3fs
from faultproxy import FaultProxy

from lerobot_wds.storage import RangeReader, RetryPolicy, size_bytes

OBJECT_BYTES = 6 << 20
FAST_RETRY = RetryPolicy(max_attempts=6, initial_backoff_s=0.05, max_backoff_s=0.5)


@pytest.fixture
def proxy(s3_server: dict[str, Any]) -> Iterator[FaultProxy]:
    port = int(s3_server["client_kwargs"]["endpoint_url"].rsplit(":", 1)[1])
    fault_proxy = FaultProxy(port)
    yield fault_proxy
    fault_proxy.close()


@pytest.fixture
def blob(s3_server: dict[str, Any], s3_bucket: str) -> tuple[str, bytes]:
    data = os.urandom(OBJECT_BYTES)
    s3fs.S3FileSystem(**s3_server, skip_instance_cache=True).pipe_file(f"{s3_bucket}/blob.bin", data)
    return f"s3://{s3_bucket}/blob.bin", data


def through(proxy: FaultProxy, s3_server: dict[str, Any]) -> dict[str, Any]:
    """Options that reach the server through the proxy, with short timeouts and no botocore retries.

    s3fs's own retry loop stays on (it is part of the stack a user runs); RangeReader's sits above it.
    """
    return {
        **s3_server,
        "client_kwargs": {"endpoint_url": proxy.endpoint},
        "config_kwargs": {"connect_timeout": 1, "read_timeout": 1, "retries": {"max_attempts": 1}},
    }


def read_all(reader: RangeReader, chunk: int = 256 << 10) -> bytes:
    parts = []
    while part := reader.read(chunk):
        parts.append(part)
    return b"".join(parts)


def test_plain_ranged_read(blob: tuple[str, bytes], proxy: FaultProxy, s3_server: dict[str, Any]) -> None:
    url, data = blob
    reader = RangeReader(url, through(proxy, s3_server), start=1000, end=3_000_000, block_bytes=1 << 20)
    assert read_all(reader) == data[1000:3_000_000]
    assert reader.retries == 0


def test_connection_dropped_mid_read(
    blob: tuple[str, bytes], proxy: FaultProxy, s3_server: dict[str, Any]
) -> None:
    url, data = blob
    reader = RangeReader(url, through(proxy, s3_server), retry=FAST_RETRY, block_bytes=1 << 20)
    proxy.drop_after(2_500_000)
    assert read_all(reader) == data
    assert proxy.stats["dropped"] == 1


def test_throttled_with_503(blob: tuple[str, bytes], proxy: FaultProxy, s3_server: dict[str, Any]) -> None:
    url, data = blob
    reader = RangeReader(url, through(proxy, s3_server), retry=FAST_RETRY, block_bytes=1 << 20)
    first = reader.read(1 << 20)
    proxy.reject(3)
    assert first + read_all(reader) == data
    assert proxy.stats["rejected"] == 3


def test_stall_longer_than_the_timeout(
    blob: tuple[str, bytes], proxy: FaultProxy, s3_server: dict[str, Any]
) -> None:
    url, data = blob
    reader = RangeReader(url, through(proxy, s3_server), retry=FAST_RETRY, block_bytes=1 << 20)
    first = reader.read(1 << 20)
    proxy.stall(3.0)
    assert first + read_all(reader) == data
    assert proxy.stats["stalled"] == 1


def test_server_down_then_back(blob: tuple[str, bytes], proxy: FaultProxy, s3_server: dict[str, Any]) -> None:
    url, data = blob
    patient = RetryPolicy(max_attempts=12, initial_backoff_s=0.1, max_backoff_s=0.5)
    reader = RangeReader(url, through(proxy, s3_server), retry=patient, block_bytes=1 << 20)
    first = reader.read(1 << 20)
    proxy.down()
    threading.Timer(1.5, proxy.up).start()
    assert first + read_all(reader) == data
    assert proxy.stats["refused"] >= 1


def test_retry_limit_gives_a_clear_error(
    blob: tuple[str, bytes], proxy: FaultProxy, s3_server: dict[str, Any]
) -> None:
    url, _ = blob
    reader = RangeReader(
        url, through(proxy, s3_server), retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.01)
    )
    proxy.down()
    with pytest.raises(OSError, match=r"blob\.bin: read at byte 0 failed 2 times \(the retry limit\)"):
        reader.read(100)


def test_a_hung_server_ends_in_a_timeout_error_within_the_bound(
    blob: tuple[str, bytes], proxy: FaultProxy, s3_server: dict[str, Any]
) -> None:
    """Connections accepted, no byte answered: with s3fs' own timeouts and retries as a user has them
    (15 s per socket read, retried for about 40 minutes), the read ends at ``timeout_s`` instead."""
    url, data = blob
    options = {**s3_server, "client_kwargs": {"endpoint_url": proxy.endpoint}, "skip_instance_cache": True}
    bounded = RetryPolicy(initial_backoff_s=0.05, max_backoff_s=0.5, timeout_s=2.0)
    reader = RangeReader(url, options, retry=bounded, block_bytes=1 << 20)
    first = reader.read(1 << 20)
    proxy.hang()
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"blob\.bin: read at byte 1048576 did not finish within "
                       r"RetryPolicy\.timeout_s=2\.0 s \(1 attempt;"):  # fmt: skip
        reader.read(1 << 20)
    assert time.monotonic() - started < 2.0 + 1.5  # the bound, plus fsspec's 1 s polling at most
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"blob\.bin: size request did not finish within"):
        size_bytes(url, options, retry=bounded)  # the reader's shard-size request is bounded too
    assert time.monotonic() - started < 2.0 + 1.5
    proxy.up()
    assert first + read_all(reader) == data  # the reader is usable again once the server answers


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"RetryPolicy\.timeout_s: got 0; expected > 0 or None"):
        RetryPolicy(timeout_s=0)


def test_missing_object_fails_fast(s3_server: dict[str, Any], s3_bucket: str, proxy: FaultProxy) -> None:
    reader = RangeReader(f"s3://{s3_bucket}/nope.bin", through(proxy, s3_server), retry=FAST_RETRY)
    with pytest.raises(FileNotFoundError):
        reader.read(10)
    assert reader.retries == 0


@pytest.mark.parametrize("wrong", ["secret", "key"])
def test_wrong_credentials_fail_fast(blob: tuple[str, bytes], s3_server: dict[str, Any], wrong: str) -> None:
    """A bad secret (403 SignatureDoesNotMatch) or an unknown key (403 InvalidAccessKeyId) is not retried."""
    url, _ = blob
    options = {**s3_server, wrong: "not-the-right-one", "skip_instance_cache": True}
    reader = RangeReader(url, options, retry=FAST_RETRY)
    with pytest.raises(PermissionError):
        reader.read(10)
    assert reader.retries == 0
