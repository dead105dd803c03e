"""A destination that fails mid-conversion: the error names the cause, nothing is published (no
manifest), and a rerun once the cause is gone completes byte-identical to an undisturbed conversion.

The destination is a real fsspec filesystem (fsspec's in-memory one, under its own protocol) that
fails the way a full disk or a dropped connection does: an upload writes half of its object at the
final path, then raises.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from helpers import DATA

from lerobot_wds import ConvertConfig, convert, read_manifest, storage, verify
from lerobot_wds import format as fmt

CONFIG = ConvertConfig(shard_size_mb=0.4)  # `multi` in 5 shards


class FaultyFS(MemoryFileSystem):
    """In-memory objects; ``fault`` = (method, call number, exception): that call writes half its data
    at the final path, then raises."""

    protocol = ("faulty",)
    store: ClassVar[dict[str, Any]] = {}
    pseudo_dirs: ClassVar[list[str]] = [""]
    fault: ClassVar[tuple[str, int, BaseException] | None] = None
    calls: ClassVar[dict[str, int]] = {}

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return MemoryFileSystem._strip_protocol(path.removeprefix("faulty://"))

    def _maybe_fail(self, method: str, path: str, data: bytes) -> None:
        count = self.calls[method] = self.calls.get(method, 0) + 1
        if self.fault is not None and self.fault[:2] == (method, count):
            super().pipe_file(path, data[: len(data) // 2])
            raise self.fault[2]

    def put_file(self, lpath: str, rpath: str, *args: Any, **kwargs: Any) -> None:
        self._maybe_fail("put_file", rpath, Path(lpath).read_bytes())
        super().put_file(lpath, rpath, *args, **kwargs)

    def pipe_file(self, path: str, value: bytes, *args: Any, **kwargs: Any) -> None:
        if path.endswith(fmt.MANIFEST_NAME):
            self._maybe_fail("pipe_manifest", path, value)
        super().pipe_file(path, value, *args, **kwargs)


@pytest.fixture
def faulty() -> Iterator[type[FaultyFS]]:
    fsspec.register_implementation("faulty", FaultyFS, clobber=True)
    yield FaultyFS
    FaultyFS.store.clear()
    FaultyFS.pseudo_dirs[:] = [""]
    FaultyFS.fault, FaultyFS.calls = None, {}


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    dest = tmp_path_factory.mktemp("undisturbed") / "multi"
    convert(str(DATA / "multi"), str(dest), CONFIG)
    return {path: (dest / path).read_bytes() for path in published(dest)}


def published(root: Path) -> list[str]:
    manifest = read_manifest(str(root))
    return [fmt.MANIFEST_NAME, *fmt.META_FILES, *(s.path for s in manifest.shards)]


FAULTS = {
    "disk full at the 2nd shard": ("put_file", 2, OSError(errno.ENOSPC, "No space left on device")),
    "connection dropped at the 4th shard": ("put_file", 4, ConnectionResetError("connection reset by peer")),
    "disk full writing the manifest": ("pipe_manifest", 1, OSError(errno.ENOSPC, "No space left on device")),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_then_rerun_is_byte_identical(
    faulty: type[FaultyFS], undisturbed: dict[str, bytes], fault: str
) -> None:
    url = "faulty://bucket/multi"
    faulty.fault = FAULTS[fault]
    with pytest.raises((OSError, ConnectionError)) as caught:
        convert(str(DATA / "multi"), url, CONFIG)
    cause = FAULTS[fault][2]
    chain = [caught.value, *_causes(caught.value)]
    assert any(type(e) is type(cause) and str(cause) in str(e) for e in chain), chain  # the cause, named
    fs = fsspec.filesystem("faulty")
    assert not fs.exists(f"{url}/{fmt.MANIFEST_NAME}") or fault == "disk full writing the manifest"
    with pytest.raises((FileNotFoundError, fmt.ShardFormatError)):
        read_manifest(url)  # nothing a reader would take for a dataset (a half manifest is not JSON)
    faulty.fault = None  # the disk has room again, the connection is back
    if fault == "disk full writing the manifest":
        fs.rm(f"{url}/{fmt.MANIFEST_NAME}")  # what is left of it: an object store never shows half a put
    result = convert(str(DATA / "multi"), url, CONFIG)
    assert result.shards_skipped >= 1  # finished shards were kept, not converted again
    for path, data in undisturbed.items():
        assert fs.cat_file(f"{url}/{path}") == data, path
    assert verify(url).ok


def _causes(exc: BaseException) -> Iterator[BaseException]:
    while (exc := exc.__cause__ or exc.__context__) is not None:  # type: ignore[assignment]
        yield exc


@pytest.mark.slow
def test_s3_server_down_mid_conversion_then_back(
    tmp_path: Path, undisturbed: dict[str, bytes], monkeypatch
) -> None:
    """A real S3 server (SeaweedFS) killed before the 3rd shard's upload: the conversion fails naming the
    endpoint it could not reach, publishes no manifest; once the server is back (same data, same
    endpoint), a rerun keeps the uploaded shards and ends byte-identical to an undisturbed conversion."""
    import s3fs
    from botocore.exceptions import EndpointConnectionError
    from s3server import SeaweedFS

    (tmp_path / "weed").mkdir()
    server = SeaweedFS(tmp_path / "weed")
    server.start()
    try:
        options = server.options
        s3fs.S3FileSystem(**options).mkdir("bucket")
        url = "s3://bucket/multi"
        config = ConvertConfig(shard_size_mb=CONFIG.shard_size_mb, storage_options=options)
        uploads = []
        move_file = storage.move_file

        def upload(local_path: str, target: str, storage_options: Any = None) -> None:
            uploads.append(target)
            if len(uploads) == 3:
                server.kill()  # the server goes down; botocore meets a closed port
            move_file(local_path, target, storage_options)

        monkeypatch.setattr(storage, "move_file", upload)
        with pytest.raises(EndpointConnectionError, match="Could not connect to the endpoint URL") as caught:
            convert(str(DATA / "multi"), url, config)
        chain = [caught.value, *_causes(caught.value)]
        assert any(server.endpoint in str(e) for e in chain), chain  # the unreachable endpoint, named
        monkeypatch.setattr(storage, "move_file", move_file)
        server.start()
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
        assert not fs.exists(f"{url}/{fmt.MANIFEST_NAME}")
        result = convert(str(DATA / "multi"), url, config)
        assert result.shards_skipped == 2  # the two shards uploaded before the server went down
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
        for path, data in undisturbed.items():
            assert fs.cat_file(f"{url}/{path}") == data, path
        assert verify(url, storage_options=options).ok
    finally:
        server.kill()
