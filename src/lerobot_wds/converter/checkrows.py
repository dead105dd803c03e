"""The ``rows`` level of ``lerobot-wds check``: the data files' index columns against the episode table.

Each data file is read once, index columns only (``episode_index``, ``frame_index``, ``timestamp``,
``index``, ``task_index``: a few bytes a row), and every episode living in it is checked with numpy.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import storage
from .findings import Problem, file_errors
from .source import LeRobotSource, SourceEpisode

# LeRobot's LeRobotDataset default tolerance_s: a frame's timestamp must be this close to the video frame
# it asks for, else LeRobot's loader raises FrameTimestampError (lerobot/datasets/video_utils.py, 0.6.1).
TOLERANCE_S = 1e-4
_INDEX_COLUMNS = ("episode_index", "frame_index", "timestamp", "index", "task_index")


@contextmanager
def open_source_file(lerobot: LeRobotSource, relative: str) -> Iterator[str | IO[bytes]]:
    """A source file to read: its local path, or an fsspec file of a remote source (read in place)."""
    if lerobot.remote is None:
        yield str(lerobot.root / relative)
        return
    url = posixpath.join(lerobot.remote.url, relative)
    fs, path = storage.url_to_fs(url, lerobot.remote.options.options)
    with fs.open(path, "rb") as file:
        yield file


def row_problems(lerobot: LeRobotSource, episodes: Sequence[SourceEpisode]) -> list[Problem]:
    """Row count, frame_index, timestamps, index and task_index of every episode; orphan rows."""
    by_file: dict[str, list[SourceEpisode]] = {}
    for episode in episodes:
        by_file.setdefault(episode.data_file, []).append(episode)
    problems: list[Problem] = []
    known = set(lerobot.episodes)
    tasks = np.array(sorted(lerobot.task_indices.values()), dtype=np.int64)
    for relative, members in sorted(by_file.items()):
        in_file = [e.episode_index for e in members]
        try:
            with open_source_file(lerobot, relative) as file:
                columns = _read_index_columns(file)
        except (pa.ArrowException, OSError, ValueError) as exc:
            problems += file_errors("rows.unreadable", relative, in_file, f"{relative}: {exc}",
                                    "rewrite the parquet file")  # fmt: skip
            continue
        if "episode_index" not in columns:
            problems += file_errors("rows.unreadable", relative, in_file, f"{relative}: no episode_index",
                                    "every LeRobot data file has an episode_index column")  # fmt: skip
            continue
        rows = _EpisodeRows(columns)
        for episode in members:
            problems += _episode_problems(episode, rows, relative, lerobot.fps, tasks)
        orphans = {int(i): n for i, n in rows.counts.items() if int(i) not in known}
        if orphans:
            problems.append(
                Problem(
                    check="rows.orphans",
                    severity="warning",
                    file=relative,
                    detail=f"{relative}: {sum(orphans.values())} rows of episode_index "
                    f"{sorted(orphans)[:5]}{'...' if len(orphans) > 5 else ''}",
                    hint="the converter ignores them (it reads each episode's rows by episode_index)",
                )
            )
    return problems


def _read_index_columns(file: str | IO[bytes]) -> dict[str, np.ndarray]:
    schema = pq.read_schema(file)
    wanted = [name for name in _INDEX_COLUMNS if name in schema.names]
    if not isinstance(file, str):
        file.seek(0)
    table = pq.read_table(file, columns=wanted)
    return {name: table[name].to_numpy() for name in wanted}


class _EpisodeRows:
    """One data file's index columns grouped by episode_index (stable: rows keep their file order)."""

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self.columns = columns
        episode_index = columns["episode_index"].astype(np.int64)
        self.order = np.argsort(episode_index, kind="stable")
        values, starts, counts = np.unique(episode_index[self.order], return_index=True, return_counts=True)
        self.counts = dict(zip(values.tolist(), counts.tolist(), strict=True))
        self._starts = dict(zip(values.tolist(), starts.tolist(), strict=True))

    def column(self, name: str, episode_index: int) -> np.ndarray | None:
        if name not in self.columns:
            return None
        start = self._starts.get(episode_index, 0)
        return self.columns[name][self.order[start : start + self.counts.get(episode_index, 0)]]


def _episode_problems(
    episode: SourceEpisode, rows: _EpisodeRows, relative: str, fps: int, tasks: np.ndarray
) -> list[Problem]:
    index = episode.episode_index
    where = f"episode {index}"

    def problem(check: str, detail: str, hint: str, severity: Any = "error") -> Problem:
        return Problem(check=check, severity=severity, episode=index, file=relative, detail=detail, hint=hint)

    count = rows.counts.get(index, 0)
    if count != episode.length:
        return [
            problem(
                "rows.count",
                f"{where}: {count} rows, length {episode.length}",
                "the converter copies exactly `length` rows per episode; fix the rows or the "
                "episode's length in meta/episodes",
            )
        ]
    found = []
    frames = rows.column("frame_index", index)
    expected = np.arange(count)
    if frames is not None and (bad := np.flatnonzero(frames != expected)).size:
        row = int(bad[0])
        found.append(
            problem(
                "rows.frame_index",
                f"{where}: row {row} has frame_index {int(frames[row])}",
                "a gap or a duplicate frame: LeRobot and the reader address frames by "
                "position in the episode",
            )
        )
    timestamps = rows.column("timestamp", index)
    if timestamps is not None and count > 1:
        if (bad := np.flatnonzero(np.diff(timestamps) <= 0)).size:
            row = int(bad[0])
            found.append(
                problem(
                    "rows.timestamp",
                    f"{where}: {timestamps[row]:.6g} s then {timestamps[row + 1]:.6g} s at row {row}",
                    "rows must be in time order",
                )
            )
        elif (bad := np.flatnonzero(np.abs(timestamps - expected / fps) > TOLERANCE_S)).size:
            row = int(bad[0])
            found.append(
                problem(
                    "rows.timestamp_grid",
                    f"{where}: frame {row} at {timestamps[row]:.6g} s, expected {row / fps:.6g} s",
                    "the converter keeps them (frames are addressed by frame_index: the shards read right); "
                    "LeRobot's own loader raises FrameTimestampError for a video frame queried further than "
                    f"tolerance_s={TOLERANCE_S} from it",
                    "warning",
                )
            )
    global_index = rows.column("index", index)
    if (
        global_index is not None
        and (bad := np.flatnonzero(global_index != expected + episode.dataset_from_index)).size
    ):
        row = int(bad[0])
        found.append(
            problem(
                "rows.index",
                f"{where}: row {row} has index {int(global_index[row])}, "
                f"expected {episode.dataset_from_index + row}",
                "index must count on from the episode's dataset_from_index",
            )
        )
    task_index = rows.column("task_index", index)
    if task_index is not None and (bad := np.flatnonzero(~np.isin(task_index, tasks))).size:
        found.append(
            problem(
                "rows.task_index",
                f"{where}: task_index {int(task_index[bad[0]])}",
                "add the task to meta/tasks.parquet",
            )
        )
    return found
