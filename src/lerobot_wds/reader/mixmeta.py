"""A mixture's metadata: per-source ``meta``, merged features, stats aggregated as LeRobot does."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import format as fmt
from .items import item_dtype
from .meta import DatasetMeta

if TYPE_CHECKING:
    from .dataset import ShardedLeRobotDataset

# What LeRobot's aggregate_feature_stats needs of every source's stats for a feature.
REQUIRED_STATS = ("min", "max", "mean", "std", "count")


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


def aggregate_stats(
    stats: Sequence[Mapping[str, Mapping[str, np.ndarray]]],
) -> dict[str, dict[str, np.ndarray]]:
    """LeRobot's ``aggregate_stats`` (``lerobot/datasets/compute_stats.py``) over the keys that every
    source has stats for (LeRobot takes the union; a key missing in one source would then describe
    only part of the mixture)."""
    keys = [key for key in stats[0] if all(key in s and _complete(s[key]) for s in stats)]
    return {key: aggregate_feature_stats([s[key] for s in stats]) for key in keys}


def aggregate_feature_stats(stats: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One feature's stats over several datasets: mean weighted by count, variance by the parallel
    algorithm (within-dataset variance plus the spread of the means), min of mins, max of maxes,
    counts summed, quantiles (``q01``...) as count-weighted means (LeRobot's approximation)."""
    means = np.stack([s["mean"] for s in stats])
    variances = np.stack([s["std"] ** 2 for s in stats])
    counts = np.stack([s["count"] for s in stats])
    total_count = counts.sum(axis=0)
    while counts.ndim < means.ndim:  # (n, 1) -> (n, 1, 1, 1) for a camera's (3, 1, 1) stats
        counts = np.expand_dims(counts, axis=-1)
    total_mean = (means * counts).sum(axis=0) / total_count
    total_variance = ((variances + (means - total_mean) ** 2) * counts).sum(axis=0) / total_count
    aggregated = {
        "min": np.min(np.stack([s["min"] for s in stats]), axis=0),
        "max": np.max(np.stack([s["max"] for s in stats]), axis=0),
        "mean": total_mean,
        "std": np.sqrt(total_variance),
        "count": total_count,
    }
    for quantile in (k for k in stats[0] if k.startswith("q") and k[1:].isdigit()):
        if all(quantile in s for s in stats):
            aggregated[quantile] = (np.stack([s[quantile] for s in stats]) * counts).sum(axis=0) / total_count
    return aggregated


def _complete(feature_stats: Mapping[str, Any]) -> bool:
    return all(name in feature_stats for name in REQUIRED_STATS)


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
