"""``delta_timestamps`` -> exact frame windows, exactly as LeRobot's ``LeRobotDataset`` computes them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def check_delta_timestamps(
    delta_timestamps: Mapping[str, Sequence[float]],
    fps: int,
    tolerance_s: float,
    features: Mapping[str, object],
) -> None:
    """Every key a feature, every value a multiple of ``1/fps`` within ``tolerance_s`` (LeRobot's rule)."""
    unknown = sorted(set(delta_timestamps) - set(features))
    if unknown:
        raise ValueError(
            f"delta_timestamps: keys {unknown} are not features; expected some of {sorted(features)}"
        )
    strings = sorted(key for key in delta_timestamps if _dtype(features[key]) in ("string", "language"))
    if strings:
        raise ValueError(
            f"delta_timestamps: keys {strings} are string features; expected numeric or camera features "
            "(LeRobot's torch.stack cannot stack a window of strings)"
        )
    outside = {
        key: [t for t in values if abs(t * fps - round(t * fps)) / fps > tolerance_s]
        for key, values in delta_timestamps.items()
    }
    outside = {key: values for key, values in outside.items() if values}
    if outside:
        raise ValueError(
            f"delta_timestamps: values {outside} are not multiples of 1/fps = 1/{fps} within tolerance_s="
            f"{tolerance_s}; expected e.g. [-{1 / fps}, 0.0]"
        )
    empty = sorted(key for key, values in delta_timestamps.items() if len(values) == 0)
    if empty:
        raise ValueError(f"delta_timestamps: keys {empty} have no values; expected at least one offset")


def _dtype(feature: object) -> object:
    return feature.get("dtype") if isinstance(feature, Mapping) else None


def delta_indices(delta_timestamps: Mapping[str, Sequence[float]], fps: int) -> dict[str, np.ndarray]:
    """Offsets in frames: ``round(t * fps)`` for each ``t`` (LeRobot's ``get_delta_indices``)."""
    return {
        key: np.array([round(t * fps) for t in values], dtype=np.int64)
        for key, values in delta_timestamps.items()
    }


def window_indices(num_frames: int, frame_index: int, deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Episode-local frame indices of a window and its pad mask.

    Indices outside ``[0, num_frames)`` are clamped to the episode's first/last frame and marked
    ``True`` in the mask, as LeRobot does.
    """
    wanted = frame_index + deltas
    return np.clip(wanted, 0, num_frames - 1), (wanted < 0) | (wanted >= num_frames)
