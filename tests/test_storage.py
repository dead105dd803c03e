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

from lerobot_wds.storage import RangedFile, RangeReader, RetryPolicy, size_bytes

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
    (15 s per socket read, retried for hours), the read ends at ``timeout_s`` instead."""
    url, data = blob
    options = {**s3_server, "client_kwargs": {"endpoint_url": proxy.endpoint}, "skip_instance_cache": True}
    head = 1 << 20
    assert RangeReader(url, options, end=head).read(head) == data[:head]  # the server answers
    proxy.hang()
    bounded = RetryPolicy(initial_backoff_s=0.05, max_backoff_s=0.5, timeout_s=2.0)
    reader = RangeReader(url, options, start=head, end=len(data), retry=bounded, block_bytes=head)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"blob\.bin: read at byte 1048576 did not finish within "
                       r"RetryPolicy\.timeout_s=2\.0 s \(1 attempt;"):  # fmt: skip
        reader.read(head)
    assert time.monotonic() - started < 2.0 + 1.5  # the bound, plus fsspec's 1 s polling at most
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"blob\.bin: size request did not finish within"):
        size_bytes(url, options, retry=bounded)  # the reader's shard-size request is bounded too
    assert time.monotonic() - started < 2.0 + 1.5
    assert proxy.stats["hung"] >= 1
    proxy.up()
    assert read_all(RangeReader(url, options, start=head)) == data[head:]  # answered again: no harm done


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


def test_ranged_file_fetches_planned_ranges_whole_and_the_rest_as_asked(
    blob: tuple[str, bytes], s3_server: dict[str, Any]
) -> None:
    url, data = blob
    ranges = [(1_000_000, 2_000_000), (3_000_000, 3_500_000), (1_900_000, 2_100_000)]
    merging = RangedFile(url, s3_server)  # overlap cut, then touching ranges merged (up to 16 MiB)
    merging.plan(ranges)
    assert merging.read(10) == data[:10]  # unplanned: what is asked
    merging.seek(1_500_000)
    assert merging.read(10) == data[1_500_000:1_500_010]
    assert (merging.num_requests, merging.downloaded_bytes) == (2, 10 + 1_100_000)
    file = RangedFile(url, s3_server, max_range_bytes=1_000_000)  # too small to merge them
    assert file.size == len(data)
    file.plan(ranges)
    file.seek(1_500_000)
    assert file.read(1000) == data[1_500_000:1_501_000]
    assert (file.num_requests, file.downloaded_bytes) == (1, 900_000)  # the planned range, from its start
    file.seek(1_000_000)
    assert file.read(900_000) == data[1_000_000:1_900_000]  # held: no request
    assert file.read(300_000) == data[1_900_000:2_200_000]  # the next range whole, then 100 kB asked for
    assert (file.num_requests, file.downloaded_bytes) == (3, 1_200_000)
    # Sequential unplanned reads fetch what is asked up to 64 KiB, then grow: 4 KiB asked at a time,
    # 64 KiB in 16 GETs, the next 192 KiB in 2 (64 + 128 KiB)
    file.seek(0)
    assert b"".join(file.read(4096) for _ in range(16)) == data[: 64 << 10]
    assert (file.num_requests, file.downloaded_bytes) == (3 + 16, 1_200_000 + (64 << 10))
    assert b"".join(file.read(4096) for _ in range(48)) == data[64 << 10 : 256 << 10]
    assert file.num_requests == 3 + 16 + 2
    file.seek(-10, os.SEEK_END)
    assert file.read(100) == data[-10:]
    assert file.read(1) == b""


def test_ranged_file_fetches_no_byte_twice(blob: tuple[str, bytes], s3_server: dict[str, Any]) -> None:
    """A header read before plan() (an mp4's moov, a parquet footer) holds the first bytes of a planned
    range: the range's GET starts after them. PyAV's short reads (read1) stop at the range's end."""
    url, data = blob
    file = RangedFile(url, s3_server)
    assert file.read(4096) == data[:4096]  # the header, read before the index gives the ranges
    file.plan([(3000, 50_000)])  # the first packets sit inside what the header read fetched
    file.seek(3000)
    assert file.read(47_000) == data[3000:50_000]
    assert file.downloaded_bytes == 50_000  # 4096 + 45_904: bytes 3000-4096 once
    file.seek(40_000)
    assert file.read1(20_000) == data[40_000:50_000]  # the planned range's end: nothing past it
    assert file.downloaded_bytes == 50_000
    assert file.read1(10) == data[50_000:50_010]  # then what is asked
    assert file.downloaded_bytes == 50_010


def test_ranged_file_survives_a_dropped_connection(
    blob: tuple[str, bytes], proxy: FaultProxy, s3_server: dict[str, Any]
) -> None:
    url, data = blob
    file = RangedFile(url, through(proxy, s3_server), size=len(data), retry=FAST_RETRY)
    file.plan([(0, len(data))])
    proxy.drop_after(2_500_000)
    assert file.read() == data
    assert proxy.stats["dropped"] == 1
