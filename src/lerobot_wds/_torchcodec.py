"""torchcodec, imported without importing ``torch._dynamo`` where that is known to be safe.

The cause is upstream: torchcodec's ``_core/ops.py`` wraps its factory ops in
``torch._dynamo.disallow_in_graph(...)`` at module level, and that attribute access imports all of
dynamo (sympy, inductor, torch.distributed, onnx: 845 modules), 73 of the 114 MB that torchcodec adds
to a process's RSS and 2 of its 2.2 s of import, in every DataLoader worker. No upstream issue or PR
about it was found in meta-pytorch/torchcodec (formerly pytorch/torchcodec); its ``ops.py`` at commit
0046a87 still does it. The fix there would be to mark the ops lazily (on first ``torch.compile``).
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import threading
import types

import torch

# torchcodec releases whose import touches nothing of dynamo but ``disallow_in_graph``: 0.11, 0.13 and 0.17
# were checked (0.13 and 0.17 by every `make test`: tests/reader/test_frames.py runs on the pinned and the
# newest stack; 0.17 calls it from ``_core/_ffmpeg_ops.py``, on the same factory ops). Releases in between
# are admitted: the stand-in serves anything else from the real dynamo. Any other version is imported
# plainly: correct, only heavier.
_PROVEN_VERSIONS = ((0, 11), (0, 17))  # inclusive


class _DynamoStandIn(types.ModuleType):
    """Stands in for ``torch._dynamo`` while torchcodec is imported.

    ``disallow_in_graph`` returns the op unchanged: the ops are never traced here (a worker compiles
    nothing; with ``num_workers=0`` decoding runs outside the user's compiled code). Anything else
    asked of the stand-in comes from the real module, so another thread that uses dynamo during the
    import is served normally, and so would a torchcodec that needed more of dynamo at import.
    """

    def __init__(self) -> None:
        super().__init__("torch._dynamo")

    @staticmethod
    def disallow_in_graph(fn: object) -> object:
        return fn

    def __getattr__(self, name: str) -> object:
        import torch._dynamo

        return getattr(torch._dynamo, name)


def _installed_version() -> tuple[int, int] | None:
    """(major, minor) of the installed torchcodec, or None if unknown."""
    try:
        version = importlib.metadata.version("torchcodec")
    except importlib.metadata.PackageNotFoundError:
        return None
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else None


def _use_stand_in() -> bool:
    """Only for a first import of torchcodec, of a proven version, with dynamo not loaded anyway."""
    if "torch._dynamo" in sys.modules or "torchcodec" in sys.modules:
        return False
    version = _installed_version()
    return version is not None and _PROVEN_VERSIONS[0] <= version <= _PROVEN_VERSIONS[1]


_VideoDecoder: type | None = None
_import_lock = threading.Lock()


def video_decoder_class() -> type:
    """torchcodec's ``VideoDecoder``, imported on first use (without torch._dynamo if proven safe)."""
    global _VideoDecoder
    with _import_lock:
        if _VideoDecoder is None:
            stand_in = _DynamoStandIn() if _use_stand_in() else None
            if stand_in is not None:
                torch._dynamo = stand_in  # found as an attribute: never in sys.modules
            try:
                from torchcodec.decoders import VideoDecoder
            finally:
                if stand_in is not None and vars(torch).get("_dynamo") is stand_in:
                    delattr(torch, "_dynamo")  # a later `import torch._dynamo` loads the real one
            _VideoDecoder = VideoDecoder
        return _VideoDecoder
