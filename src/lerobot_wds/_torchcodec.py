"""torchcodec, imported without importing ``torch._dynamo``."""

from __future__ import annotations

import sys
import threading
import types

import torch


class _DynamoStandIn(types.ModuleType):
    """Stands in for ``torch._dynamo`` while torchcodec 0.13 is imported.

    torchcodec's only use of dynamo at import is ``torch._dynamo.disallow_in_graph(op)`` on its ops,
    and that attribute access imports all of dynamo (sympy, inductor, torch.distributed): 73 of the
    114 MB that torchcodec adds to a process's RSS, and 2 of its 2.2 s of import, in every DataLoader
    worker. The ops are never traced here (a worker compiles nothing; with ``num_workers=0`` decoding
    runs outside the user's compiled code). Anything else asked of the stand-in comes from the real
    module, so another thread that uses dynamo during the import is served normally.
    """

    def __init__(self) -> None:
        super().__init__("torch._dynamo")

    @staticmethod
    def disallow_in_graph(fn: object) -> object:
        return fn

    def __getattr__(self, name: str) -> object:
        import torch._dynamo

        return getattr(torch._dynamo, name)


_VideoDecoder: type | None = None
_import_lock = threading.Lock()


def video_decoder_class() -> type:
    """torchcodec's ``VideoDecoder``, imported on first use without importing torch._dynamo."""
    global _VideoDecoder
    with _import_lock:
        if _VideoDecoder is None:
            stand_in = None
            if "torch._dynamo" not in sys.modules and "torchcodec" not in sys.modules:
                stand_in = _DynamoStandIn()
                torch._dynamo = stand_in  # found as an attribute: never in sys.modules
            try:
                from torchcodec.decoders import VideoDecoder
            finally:
                if stand_in is not None and vars(torch).get("_dynamo") is stand_in:
                    delattr(torch, "_dynamo")  # a later `import torch._dynamo` loads the real one
            _VideoDecoder = VideoDecoder
        return _VideoDecoder
