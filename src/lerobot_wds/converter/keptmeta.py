"""``meta/`` for a conversion that skipped episodes: LeRobot's metadata describing the kept ones only.

The episode table keeps the kept episodes' rows (per-episode ``stats/*`` included, for ``export``),
``info.json`` their totals, and ``stats.json`` is aggregated over their per-episode stats as LeRobot's
``aggregate_stats`` does (count-weighted means, pooled variance, min of mins, max of maxes), so a
policy normalises with the statistics of what it trains on. Tasks are kept whole: task indices are
what the rows and the manifest refer to.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import format as fmt
from ..meta import aggregate_feature_stats

logger = logging.getLogger(__name__)

INFO_NAME, STATS_NAME, TASKS_NAME = fmt.META_FILES


def kept_meta(root: Path, kept: Collection[int]) -> dict[str, bytes]:
    """The meta files (relative name -> bytes) of the source at ``root`` restricted to ``kept`` episodes.

    Episode tables left without rows are left out. Features without per-episode stats keep the
    source's ``stats.json`` entry (logged).
    """
    wanted = pa.array(sorted(kept), pa.int64())
    files: dict[str, bytes] = {}
    tables = []
    for path in sorted(root.glob(fmt.EPISODES_META_GLOB)):
        table = pq.read_table(path)
        table = table.filter(pc.is_in(table["episode_index"].cast(pa.int64()), value_set=wanted))
        if table.num_rows:
            files[path.relative_to(root).as_posix()] = _parquet_bytes(table)
            tables.append(table)
    episodes = pa.concat_tables(tables, promote_options="default") if tables else None
    info = json.loads((root / INFO_NAME).read_text())
    if episodes is not None:
        info["total_episodes"] = episodes.num_rows
        info["total_frames"] = int(pc.sum(episodes["length"]).as_py() or 0)
    files[INFO_NAME] = json.dumps(info, indent=4).encode()
    stats_path = root / STATS_NAME
    source_stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    files[STATS_NAME] = json.dumps(_aggregated(episodes, source_stats, root), indent=4).encode()
    if (root / TASKS_NAME).is_file():
        files[TASKS_NAME] = (root / TASKS_NAME).read_bytes()
    return files


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _aggregated(episodes: pa.Table | None, source_stats: dict[str, Any], root: Path) -> dict[str, Any]:
    """Per feature, LeRobot's aggregation of the episodes' ``stats/<feature>/<stat>`` columns."""
    per_feature: dict[str, dict[str, str]] = {}
    for name in [] if episodes is None else episodes.column_names:
        parts = name.split("/")
        if parts[0] == "stats" and len(parts) >= 3:
            per_feature.setdefault("/".join(parts[1:-1]), {})[parts[-1]] = name
    stats = {}
    for feature, columns in per_feature.items():
        if not {"mean", "std", "min", "max", "count"} <= set(columns):
            continue
        assert episodes is not None  # per_feature is empty otherwise
        values = {stat: episodes[column].to_pylist() for stat, column in columns.items()}
        rows = [{stat: np.asarray(v[i], dtype=np.int64 if stat == "count" else np.float64)
                 for stat, v in values.items()} for i in range(episodes.num_rows)]  # fmt: skip
        stats[feature] = {k: v.tolist() for k, v in aggregate_feature_stats(rows).items()}
    for feature in sorted(set(source_stats) - set(stats)):
        logger.warning("%s: no per-episode stats for %r; meta/stats.json keeps the source's", root, feature)
        stats[feature] = source_stats[feature]
    return stats
