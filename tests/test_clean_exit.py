"""Normal runs end cleanly: exit status 0 and nothing on stderr (no abort at exit, no tracebacks).

Both failures were intermittent or only visible on stderr, so each check runs real processes, repeatedly
where the failure was a race: an abort at interpreter exit while one of Arrow's threads released a Parquet
reader over Python bytes (storage.arrow_buffer), and aiobotocore tracebacks in DataLoader workers that
collected the parent's s3fs filesystem (storage._forget_parent_sessions).
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

from lerobot_wds import convert, storage
from lerobot_wds.converter.verify import inspect_dataset
from lerobot_wds.meta import read_meta

RUNS = 6  # before the fix, 1 to 10 runs in 10 aborted (status 134) on this 2-core machine, by load

READ = """
import sys
from torch.utils.data import DataLoader
from lerobot_wds import ShardedLeRobotDataset
dataset = ShardedLeRobotDataset(sys.argv[1])
loader = DataLoader(dataset, batch_size=8, num_workers=int(sys.argv[2]))
for epoch in range(2):
    items = sum(len(batch["index"]) for batch in loader)
print(items)
"""


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)


def _clean(completed: subprocess.CompletedProcess[str]) -> str | None:
    """None if the run ended cleanly, else what went wrong."""
    if completed.returncode == 0 and not completed.stderr.strip():
        return None
    return f"status {completed.returncode}; stderr: {completed.stderr[-2000:]}"


@pytest.fixture(scope="module")
def tiny_converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("clean-exit") / "tiny"
    convert(str(Path(__file__).parent / "data" / "tiny"), str(dest))
    return dest


def test_arrow_buffer_holds_no_python_object() -> None:
    data = Path(__file__).parent.joinpath("data", "tiny", "meta", "tasks.parquet").read_bytes()
    before = sys.getrefcount(data)
    buffer = storage.arrow_buffer(data)
    assert sys.getrefcount(data) == before  # a view (pa.py_buffer, io.BytesIO) would hold a reference
    assert buffer.to_pybytes() == data


def test_parquet_bytes_are_read_from_arrow_memory(
    tiny_converted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic half of the abort: every Parquet read of the reader's and inspect's is given Arrow's
    memory, never a Python file or a view of Python bytes."""
    sources: list[object] = []
    read_table = pq.read_table

    def spy(source: object, *args: Any, **kwargs: Any) -> pa.Table:
        sources.append(source)
        return read_table(source, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", spy)
    read_meta(str(tiny_converted), None)
    inspect_dataset(str(tiny_converted))
    assert len(sources) == 2
    assert all(type(source) is pa.Buffer for source in sources), sources


@pytest.mark.parametrize(
    "code",
    [
        "from lerobot_wds.cli import main; main(['inspect', {url!r}])",
        "from lerobot_wds.meta import read_meta; read_meta({url!r}, None)",
    ],
    ids=["inspect", "read_meta"],
)
def test_no_abort_at_exit(tiny_converted: Path, code: str) -> None:
    """The race itself, in real processes that exit right after reading the metadata."""
    command = [sys.executable, "-c", code.format(url=str(tiny_converted))]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: _clean(_run(command)), range(RUNS)))
    failures = [result for result in results if result is not None]
    assert not failures, f"{len(failures)} of {RUNS} runs did not end cleanly; first: {failures[0]}"


@pytest.mark.parametrize("num_workers", [0, 2])
def test_local_read_leaves_stderr_empty(tiny_converted: Path, num_workers: int) -> None:
    completed = _run([sys.executable, "-c", READ, str(tiny_converted), str(num_workers)])
    assert _clean(completed) is None, _clean(completed)
    assert completed.stdout.split() == ["224"]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_s3_read_leaves_stderr_empty(
    tiny_converted: Path, s3_server: dict[str, Any], s3_bucket: str, num_workers: int
) -> None:
    """Credentials and endpoint from the environment, as a user sets them: with 2 workers, 46-92 lines of
    ``Task exception was never retrieved ... attached to a different loop`` before the fix."""
    s3fs.S3FileSystem(**s3_server).put(str(tiny_converted), f"{s3_bucket}/tiny", recursive=True)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": s3_server["key"],
        "AWS_SECRET_ACCESS_KEY": s3_server["secret"],
        "AWS_ENDPOINT_URL": s3_server["client_kwargs"]["endpoint_url"],
    }
    completed = _run([sys.executable, "-c", READ, f"s3://{s3_bucket}/tiny", str(num_workers)], env=env)
    assert _clean(completed) is None, _clean(completed)
    assert completed.stdout.split() == ["224"]
