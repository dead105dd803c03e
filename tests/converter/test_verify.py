"""verify: each problem named by shard and episode, from one streamed pass over each shard."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest
from helpers import DATA

from lerobot_wds import ConvertConfig, convert, read_manifest, verify
from lerobot_wds import format as fmt


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    dest = tmp_path / "tiny"
    convert(str(DATA / "tiny"), str(dest), ConvertConfig())
    return dest


def rename_members(shard: Path, old: str, new: str) -> None:
    """Rewrite a shard with sample ``old`` renamed to ``new`` (same length: offsets unchanged)."""
    assert len(old) == len(new)
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member, data in members:
            member.name = member.name.replace(old, new)
            tar.addfile(member, io.BytesIO(data))
    shard.write_bytes(out.getvalue())


def test_verify_names_a_foreign_sample_and_the_missing_episode(tiny: Path) -> None:
    shard = tiny / read_manifest(str(tiny)).shards[0].path
    rename_members(shard, "ep_000002", "ep_000099")
    problems = verify(str(tiny)).problems
    name = "shards/shard-000000.tar"
    assert f"{name}: sample 'ep_000099' is not in the manifest" in problems
    assert f"{name}: episode 2 (ep_000002) missing" in problems
    assert any(p.startswith(f"{name}: sha256 ") for p in problems), problems


def test_verify_names_a_wrong_offset(tiny: Path) -> None:
    manifest_path = tiny / fmt.MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    offset = manifest["episodes"]["offset_bytes"][1]
    manifest["episodes"]["offset_bytes"][1] += 512
    manifest_path.write_text(json.dumps(manifest))
    report = verify(str(tiny))
    crc = manifest["episodes"]["crc32"][1]
    assert report.problems[1:] == [
        f"shards/shard-000000.tar: episode 1: at byte {offset}; manifest says {offset + 512}"
    ]  # and, as the reader would find, the bytes at the wrong offset are not the episode's:
    assert re.fullmatch(
        rf"shards/shard-000000\.tar: episode 1: bytes {offset + 512}\.\.\d+ have crc32 [0-9a-f]{{8}}; "
        rf"manifest says {crc:08x}",
        report.problems[0],
    )
    assert report.episodes_checked == 6
