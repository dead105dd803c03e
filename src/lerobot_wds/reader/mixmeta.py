"""A mixture's metadata: per-source ``meta``, merged features, stats aggregated as LeRobot does."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import format as fmt
from ..meta import DatasetMeta, aggregate_stats
from .items import item_dtype

if TYPE_CHECKING:
    from .dataset import ShardedLeRobotDataset


@dataclass(frozen=True, slots=True)
class MixtureMeta:
    """What policies read of a dataset's ``meta``, for a mixture: ``features`` (the union over the
    sources, after renaming), ``fps``, ``stats`` (aggregated over the sources as LeRobot's
    ``aggregate_stats``: count-weighted mean, pooled std, global min/max, summed count; quantiles as
    count-weighted means like LeRobot's), and ``sources`` (each source's own :class:`DatasetMeta`, whose
    ``stats`` serve per-dataset normalisation; their keys are not renamed)."""

    sources: list[DatasetMeta]
    dataset_names: list[str]
    features: dict[str, dict[str, Any]]
    fps: int
    stats: dict[str, dict[str, np.ndarray]]

    @property
    def camera_keys(self) -> list[str]:
        return [key for key, feature in self.features.items() if feature["dtype"] in ("video", "image")]

    @property
    def video_keys(self) -> list[str]:
        return [key for key, feature in self.features.items() if feature["dtype"] == "video"]

    @property
    def names(self) -> dict[str, Any]:
        return {key: feature.get("names") for key, feature in self.features.items()}

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {key: tuple(feature["shape"]) for key, feature in self.features.items()}


def mixture_meta(
    sources: Sequence[DatasetMeta],
    rename: Sequence[Mapping[str, str]],
    names: Sequence[str],
    drop: Sequence[Collection[str]],
) -> MixtureMeta:
    features: dict[str, dict[str, Any]] = {}
    stats = []
    for meta, renamed, dropped in zip(sources, rename, drop, strict=True):
        for key, feature in meta.features.items():
            if key not in dropped:
                features.setdefault(renamed.get(key, key), feature)
        stats.append({renamed.get(k, k): v for k, v in meta.stats.items() if k not in dropped})
    return MixtureMeta(
        sources=list(sources),
        dataset_names=list(names),
        features=features,
        fps=sources[0].fps,
        stats=aggregate_stats(stats),
    )


def feature_signature(
    dataset: ShardedLeRobotDataset, rename: Mapping[str, str], drop: Collection[str] = ()
) -> dict[str, tuple[Any, str]]:
    """Each feature's item shape and dtype (after ``rename``), as the reader returns it: a window's length
    leads the shape; numbers in LeRobot's dtypes (float64 and float16 stored values are float32 items,
    integers int64: :func:`.items.item_dtype`), so sources whose stored dtypes differ but whose items
    agree mix, as in LeRobot's ``MultiLeRobotDataset``; cameras are ``(C, H, W)`` (declared channel-first
    or last: :func:`lerobot_wds.format.camera_chw`) uint8 or float32 (depth maps float32)."""
    signatures = {}
    deltas = dataset.spec.deltas
    depth = set(dataset.meta.depth_keys)
    for key, feature in dataset.meta.features.items():
        if key in drop:
            continue
        shape = tuple(feature["shape"])
        dtype = str(feature["dtype"])
        chw = fmt.camera_chw(feature) if dtype in ("video", "image") else None
        if chw is not None:
            shape = chw
            frames = "float32" if key in depth or not dataset.spec.return_uint8 else "uint8"
            dtype = f"{dtype} as {frames}"
        elif _is_numeric(dtype):
            dtype = str(item_dtype(np.dtype(dtype), dataset.spec.keep_float64))
        if key in deltas:
            shape = (len(deltas[key]), *shape)
        signatures[rename.get(key, key)] = (shape, dtype)
    return signatures


def _is_numeric(dtype: str) -> bool:
    try:
        return np.dtype(dtype).kind in "biuf"
    except TypeError:  # "string", "language", ...
        return False
