"""Credentials never reach exceptions (messages, notes, tracebacks), reprs, reader state or skip logs:
neither ``storage_options`` (key, secret, token) nor a URL's ``user:password@`` or query string."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import traceback
from pathlib import Path
from typing import Any

import corruptions as bad
import fsspec
import pytest

from lerobot_wds import ReaderConfig, ShardedLeRobotDataset, read_manifest, storage

SECRET, TOKEN = "SECRET-9f3a7c", "TOKEN-51d2e8"
OPTIONS = {"key": "AKIA-PUBLIC-ID", "secret": SECRET, "token": TOKEN}  # LocalFileSystem accepts and ignores


def everything_said(exc: BaseException) -> str:
    """What a user or a log could see of an exception: message, notes, repr, the whole traceback."""
    return "\n".join([str(exc), repr(exc), *getattr(exc, "__notes__", []), *traceback.format_exception(exc)])


def assert_hidden(text: str) -> None:
    assert SECRET not in text
    assert TOKEN not in text


@pytest.fixture
def broken(converted: dict[str, str], tmp_path: Path):
    def make(name: str) -> str:
        root = tmp_path / name.replace(" ", "-").replace("/", "-")
        shutil.copytree(converted["tiny"], root)
        next(c for c in bad.CASES if c.name == name).apply(root)
        return str(root)

    return make


def test_reprs_and_state_hold_no_storage_options(converted: dict[str, str]) -> None:
    config = ReaderConfig(storage_options=OPTIONS)
    assert_hidden(repr(config))
    assert_hidden(str(config))
    dataset = ShardedLeRobotDataset(converted["tiny"], storage_options=OPTIONS, on_error="skip")
    assert_hidden(repr(dataset))
    assert_hidden(repr(dataset.config))
    assert_hidden(json.dumps(dataset.state_dict()))
    next(iter(dataset))
    assert_hidden(json.dumps(dataset.state_dict()))
    assert_hidden(repr(dataset.timing_stats()))


@pytest.mark.parametrize(
    "corruption",
    [
        "manifest missing",
        "manifest not JSON",
        "meta/info.json missing",
        "meta/tasks.parquet random bytes",
        "shard missing",
        "flip in rows.arrow",
        "mp4 random bytes (resync)",
        "rows.arrow zstd bomb (resync)",
    ],
)
def test_errors_hold_no_storage_options(broken, corruption: str) -> None:
    root = broken(corruption)
    with pytest.raises((ValueError, FileNotFoundError)) as caught:
        list(ShardedLeRobotDataset(root, storage_options=OPTIONS))
    assert_hidden(everything_said(caught.value))
    assert root in str(caught.value)  # the error still says where


def test_skip_logs_hold_no_storage_options(broken, caplog) -> None:
    root = broken("flip in rows.arrow")
    with caplog.at_level(logging.WARNING):
        items = list(ShardedLeRobotDataset(root, storage_options=OPTIONS, on_error="skip"))
    assert len(items) == 224
    assert caplog.records
    assert_hidden(caplog.text)


def test_redact() -> None:
    assert storage.redact("https://alice:s3cr3t@host/data/ds") == "https://alice:***@host/data/ds"
    assert storage.redact("https://host/ds?X-Amz-Signature=abc") == "https://host/ds?***"
    assert storage.redact("s3://bucket/ds") == "s3://bucket/ds"
    assert storage.redact("/local/ds") == "/local/ds"
    assert storage.redact("memory://u:p@x") == "memory://u:***@x"


def test_urls_with_a_password_are_redacted_in_errors(converted: dict[str, str]) -> None:
    """A dataset in fsspec's memory filesystem under a path that looks like ``user:password@host``."""
    url = f"memory://alice:{SECRET}@bucket/tiny"
    fs = fsspec.filesystem("memory")
    with pytest.raises(FileNotFoundError) as caught:
        read_manifest(url)
    assert_hidden(everything_said(caught.value))
    assert "memory://alice:***@bucket/tiny: no manifest.json" in str(caught.value)
    fs.put(converted["tiny"], f"alice:{SECRET}@bucket/tiny", recursive=True)
    try:
        fs.rm(f"alice:{SECRET}@bucket/tiny/{read_manifest(converted['tiny']).shards[0].path}")
        dataset = ShardedLeRobotDataset(url)
        assert_hidden(repr(dataset))
        with pytest.raises(FileNotFoundError) as missing:
            list(dataset)
        assert_hidden(everything_said(missing.value))
        assert "memory://alice:***@bucket/tiny/shards/shard-000000.tar: missing" in str(missing.value)
    finally:
        fs.rm(f"alice:{SECRET}@bucket", recursive=True)


def test_pickled_dataset_keeps_storage_options_out_of_its_repr(converted: dict[str, str]) -> None:
    """DataLoader workers get the dataset by pickle (in memory, never logged): it still works there."""
    dataset: Any = pickle.loads(
        pickle.dumps(ShardedLeRobotDataset(converted["tiny"], storage_options=OPTIONS))
    )
    assert dataset.config.storage_options == OPTIONS
    assert_hidden(repr(dataset))
