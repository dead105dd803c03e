"""The tar writer: webdataset's bytes without webdataset; a converter process never loads torch."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import webdataset as wds
from helpers import fixture_dir

from lerobot_wds import format as fmt
from lerobot_wds.converter.shards import write_sample


def test_write_sample_gives_webdataset_tarwriters_bytes() -> None:
    samples = [
        {
            "__key__": "ep_000000",
            "rows.arrow": b"\x00" * 700,
            "meta.json": b"{}",
            "a.b.mp4": bytes(range(256)),
        },
        {"__key__": "ep_000001", "rows.arrow": b"", "meta.json": b'{"x": 1}'},
        {"__key__": "ep_000002_" + "x" * 120, "meta.json": b"{}"},  # a long name: a PAX header
    ]
    ours = io.BytesIO()
    with tarfile.open(fileobj=ours, mode="w|") as tar:
        for sample in samples:
            write_sample(tar, sample)
    theirs = io.BytesIO()
    writer = wds.TarWriter(
        theirs, user=fmt.TAR_USER, group=fmt.TAR_GROUP, mode=fmt.TAR_MODE, mtime=fmt.TAR_MTIME, encoder=False
    )
    for sample in samples:
        writer.write(dict(sample))
    writer.close()
    assert ours.getvalue() == theirs.getvalue()


def test_the_converter_does_not_import_torch(tmp_path: Path) -> None:
    """Importing the converter and converting a dataset (1 and 2 workers) leaves torch unloaded."""
    script = textwrap.dedent(
        """
        import sys
        import lerobot_wds.converter
        from lerobot_wds import ConvertConfig, convert, verify
        assert "torch" not in sys.modules, "import"
        for workers in (1, 2):
            convert(sys.argv[1], f"{sys.argv[2]}/{workers}", ConvertConfig(workers=workers))
            assert verify(f"{sys.argv[2]}/{workers}").ok
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "torchcodec")))
        print(loaded)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(fixture_dir("tiny")), str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
