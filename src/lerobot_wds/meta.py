"""LeRobot's metadata as copied beside the shards, read as LeRobot's ``LeRobotDatasetMetadata`` reads it.

Neutral ground: the reader builds items from it and the converter's ``verify`` checks it, so it imports
neither (nor torch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import format as fmt
from . import storage
from .format import MM_PER_METRE

LANGUAGE_COLUMNS = ("language_persistent", "language_events")  # LeRobot's datasets/language.py


@dataclass(frozen=True, slots=True)
class DatasetMeta:
    """LeRobot's metadata, as copied beside the shards, with the attributes of LeRobot's
    ``LeRobotDatasetMetadata`` that policies and their processors read (``features``, ``stats`` as
    numpy arrays, ``fps``, ``camera_keys``, ...): ``make_policy(cfg, ds_meta=dataset.meta)`` works.
    Like LeRobot's, it describes the whole source dataset, also when only some episodes are read."""

    info: dict[str, Any]
    stats: dict[str, Any]  # feature -> statistic -> np.ndarray (at least 1-d), as LeRobot loads them
    tasks: dict[int, str]  # task_index -> task

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return dict(self.info["features"])

    @property
    def robot_type(self) -> str | None:
        return self.info.get("robot_type")

    @property
    def image_keys(self) -> list[str]:
        return [key for key, feature in self.features.items() if feature["dtype"] == "image"]

    @property
    def video_keys(self) -> list[str]:
        return [key for key, feature in self.features.items() if feature["dtype"] == "video"]

    @property
    def camera_keys(self) -> list[str]:
        return [key for key, feature in self.features.items() if feature["dtype"] in ("video", "image")]

    @property
    def depth_keys(self) -> list[str]:
        """Depth-map features (``is_depth_map`` in the feature's ``info``), as LeRobot's."""
        return [key for key, feature in self.features.items() if fmt.is_depth_map(feature)]

    @property
    def has_language_columns(self) -> bool:
        """Whether the dataset declares LeRobot's language columns (its trainer then collates them apart)."""
        return any(key in self.features for key in LANGUAGE_COLUMNS)

    @property
    def names(self) -> dict[str, Any]:
        return {key: feature["names"] for key, feature in self.features.items()}

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {key: tuple(feature["shape"]) for key, feature in self.features.items()}

    @property
    def total_episodes(self) -> int:
        return int(self.info["total_episodes"])

    @property
    def total_frames(self) -> int:
        return int(self.info["total_frames"])

    @property
    def total_tasks(self) -> int:
        return int(self.info["total_tasks"])


def read_meta(
    url: str,
    storage_options: Mapping[str, Any] | None,
    *,
    retry: storage.RetryPolicy | None = None,
    depth_output_unit: str = "mm",
) -> DatasetMeta:
    """LeRobot's meta files beside the shards, read in one concurrent batch (stats.json is optional),
    retried and bounded by ``retry`` (None: the default policy); depth stats in ``depth_output_unit``."""
    info_url, stats_url, tasks_url = (storage.join(url, name) for name in fmt.META_FILES)
    blobs = storage.read_many([info_url, stats_url, tasks_url], storage_options, retry=retry)
    for required in (info_url, tasks_url):
        if blobs[required] is None:
            raise FileNotFoundError(
                f"{storage.redact(required)}: missing; expected LeRobot's meta files beside the shards"
            )
    info_bytes, stats_bytes, tasks_bytes = (blobs[u] for u in (info_url, stats_url, tasks_url))
    info_url, stats_url, tasks_url = (storage.redact(u) for u in (info_url, stats_url, tasks_url))  # messages
    info = fmt.json_loads(info_bytes or b"", info_url)
    features = fmt.json_field(info, "features", dict, info_url)
    fmt.json_field(info, "fps", int, info_url)
    for key, feature in features.items():
        fmt.json_field(feature, "dtype", str, f"{info_url}: feature {key!r}")
    stats_json = fmt.json_loads(stats_bytes or b"{}", stats_url)
    if not isinstance(stats_json, dict) or not all(isinstance(v, dict) for v in stats_json.values()):
        raise fmt.ShardFormatError(f"{stats_url}: expected a JSON object of feature -> statistics")
    stats = _stats_as_arrays(stats_json)
    _rescale_depth_stats(stats, features, depth_output_unit)
    try:
        table = pq.read_table(storage.arrow_buffer(tasks_bytes or b""))
    except (pa.ArrowException, OSError) as exc:
        raise fmt.ShardFormatError(f"{tasks_url}: not a Parquet file of tasks; {exc}") from exc
    return DatasetMeta(info=info, stats=stats, tasks=fmt.task_strings(table, tasks_url))


def _stats_as_arrays(stats: Any) -> Any:
    """stats.json's lists as numpy arrays of at least one dimension, as LeRobot's ``load_stats``."""
    if isinstance(stats, dict):
        return {key: _stats_as_arrays(value) for key, value in stats.items()}
    return np.atleast_1d(np.asarray(stats))


def recorded_depth_unit(feature: Mapping[str, Any]) -> str | None:
    """The unit a depth map was recorded in (LeRobot's ``info.depth_unit``: ``"mm"``, ``"m"`` or None)."""
    unit = (feature.get("info") or {}).get("depth_unit")
    return unit if isinstance(unit, str) else None


def _rescale_depth_stats(stats: dict[str, Any], features: Mapping[str, Any], output_unit: str) -> None:
    """Depth frames are returned in ``output_unit``; stats recorded in the other unit are scaled to match,
    in place (LeRobot's ``rescale_depth_stats``: every statistic but ``count``; an unknown unit: as is)."""
    for key, feature in features.items():
        recorded = recorded_depth_unit(feature)
        if not fmt.is_depth_map(feature) or recorded is None or recorded == output_unit or key not in stats:
            continue
        factor = MM_PER_METRE if recorded == "m" else 1.0 / MM_PER_METRE
        stats[key] = {
            stat: value if stat == "count" else value * factor for stat, value in stats[key].items()
        }


# What LeRobot's aggregate_feature_stats needs of every source's stats for a feature.
REQUIRED_STATS = ("min", "max", "mean", "std", "count")


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
