"""The torch._dynamo stand-in is used only for the torchcodec versions it was proven with.

The stand-in path itself (no dynamo after decoding, dynamo usable afterwards) is tested in
tests/reader/test_frames.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from lerobot_wds import _torchcodec

VERSIONS = {(0, 10): False, (0, 11): True, (0, 13): True, (0, 17): True, (0, 18): False, (1, 0): False}


@pytest.mark.parametrize(("version", "expected"), [*VERSIONS.items(), (None, False)])
def test_stand_in_only_for_proven_versions(
    monkeypatch: pytest.MonkeyPatch, version: tuple[int, int] | None, expected: bool
) -> None:
    monkeypatch.setattr(_torchcodec, "_installed_version", lambda: version)
    for name in ("torch._dynamo", "torchcodec"):  # as in a fresh decoding process
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert _torchcodec._use_stand_in() is expected


def test_installed_version_is_read() -> None:
    import torchcodec

    major, minor = (int(part) for part in torchcodec.__version__.split(".")[:2])
    assert _torchcodec._installed_version() == (major, minor)


def test_an_unproven_version_is_imported_plainly() -> None:
    """A fresh process with torchcodec reported as 0.18: no stand-in, so dynamo loads with it."""
    script = """
import sys
from lerobot_wds import _torchcodec
_torchcodec._installed_version = lambda: (0, 18)
made = []
class Spy(_torchcodec._DynamoStandIn):
    def __init__(self):
        made.append(self)
        super().__init__()
_torchcodec._DynamoStandIn = Spy
decoder = _torchcodec.video_decoder_class()
print(decoder.__name__, len(made), "torch._dynamo" in sys.modules)
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "VideoDecoder 0 True"
