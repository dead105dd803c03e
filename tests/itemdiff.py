"""How an item differs from a golden one recorded from LeRobot's ``LeRobotDataset``: used by the tests
(our items) and by ``tests/lerobot_check.py`` inside the LeRobot venv (LeRobot's own items); imports
only numpy and torch, which both environments have.

Golden tensors are recorded as ``{"shape", "dtype"}`` plus one of: ``values`` (exact), ``sha256`` (of the
tensor's bytes) or ``frames`` (the session-1 layout: per frame, the sha256 of ``rint(x * 255)`` as uint8).
A uint8 camera tensor (``return_uint8``, the fast preset) is compared as LeRobot's float32 ``x / 255``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch


def frame_sha256(value: torch.Tensor) -> list[str]:
    array = value.numpy()
    if array.ndim == 3:
        array = array[None]
    return [hashlib.sha256(np.rint(f * 255).astype(np.uint8).tobytes()).hexdigest() for f in array]


def item_problems(got: dict[str, Any], want: dict[str, Any], where: str = "") -> list[str]:
    """Keys, then per tensor dtype, shape and content; empty when the items are equal."""
    found = [f"{where}keys differ: {sorted(set(got) ^ set(want))}"] if set(got) != set(want) else []
    for key, expected in want.items():
        value = got.get(key)
        if not isinstance(expected, dict):
            if value != expected:
                found.append(f"{where}{key}: {value!r} != {expected!r}")
            continue
        if not isinstance(value, torch.Tensor):
            found.append(f"{where}{key}: {type(value).__name__}; expected a tensor")
            continue
        if ("sha256" in expected or "frames" in expected) and value.dtype == torch.uint8:
            value = value.to(torch.float32) / 255  # LeRobot's own conversion of decoded frames
        if list(value.shape) != expected["shape"] or str(value.dtype) != f"torch.{expected['dtype']}":
            found.append(f"{where}{key}: {tuple(value.shape)} {value.dtype}; expected {expected}")
        elif "frames" in expected:
            if frame_sha256(value) != [f["sha256"] for f in expected["frames"]]:
                found.append(f"{where}{key}: frames differ")
        elif "sha256" in expected:
            if hashlib.sha256(value.contiguous().numpy().tobytes()).hexdigest() != expected["sha256"]:
                found.append(f"{where}{key}: bytes differ")
        elif value.flatten().tolist() != expected["values"]:
            found.append(f"{where}{key}: values {value.flatten().tolist()} != {expected['values']}")
    return found
