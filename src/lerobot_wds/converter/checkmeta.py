"""The ``meta`` level of ``lerobot-wds check``: info.json, the episode table, tasks, file existence.

Reads ``meta/`` (already parsed by :class:`~.source.LeRobotSource`) and one ``stat`` per referenced file
(one listing per folder for a remote source); the whole source's file list only when some are missing,
to name the near miss.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Sequence
from pathlib import Path

from .. import storage
from .findings import Problem
from .source import LeRobotSource, SourceEpisode

_STANDARD_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def meta_problems(lerobot: LeRobotSource, episodes: Sequence[SourceEpisode]) -> list[Problem]:
    """info.json, the episode table, tasks and file existence: reads no data or video file."""
    problems = [
        Problem(
            check="info.features",
            severity="warning",
            detail=f"no {name!r} feature",
            hint="LeRobot's writer declares them; the converter copies the rows as they are",
        )
        for name in _STANDARD_COLUMNS
        if name not in lerobot.features
    ]
    problems += _episode_table_problems(lerobot, episodes)
    problems += _file_problems(lerobot, episodes)
    return problems


def _episode_table_problems(lerobot: LeRobotSource, episodes: Sequence[SourceEpisode]) -> list[Problem]:
    problems = []
    selected = {e.episode_index for e in episodes}
    for index in lerobot.duplicate_episodes:
        if index in selected:
            problems.append(
                Problem(
                    check="episodes.duplicate",
                    severity="error",
                    episode=index,
                    detail=f"episode {index}",
                    hint="keep one row per episode in meta/episodes",
                )
            )
    indices = list(lerobot.episodes)
    if indices and indices != list(range(len(indices))):
        absent = sorted(set(range(indices[-1] + 1)) - set(indices))
        problems.append(
            Problem(
                check="episodes.gap",
                severity="warning",
                detail=f"{len(absent)} indices absent, first {absent[:5]}"
                if absent
                else "indices do not start at 0",
                hint="LeRobot addresses episodes by position; the converter keeps the indices as they are "
                "(lerobot-wds export renumbers them 0..N-1)",
            )
        )
    previous: SourceEpisode | None = None
    for episode in lerobot.episodes.values():
        expected = 0 if previous is None else previous.dataset_from_index + previous.length
        if episode.episode_index in selected and episode.dataset_from_index != expected:
            problems.append(
                Problem(
                    check="episodes.from_index",
                    severity="warning",
                    episode=episode.episode_index,
                    detail=f"episode {episode.episode_index}: {episode.dataset_from_index}, "
                    f"expected {expected}",
                    hint="the reader uses each episode's own dataset_from_index as LeRobot's `index`; "
                    "LeRobot's loader finds rows by it",
                )
            )
        previous = episode
    for episode in episodes:
        if episode.length <= 0:
            problems.append(
                Problem(
                    check="episodes.length",
                    severity="error",
                    episode=episode.episode_index,
                    detail=f"episode {episode.episode_index}: {episode.length}",
                    hint="an episode needs at least one frame",
                )
            )
        unknown = [t for t in episode.tasks if t not in lerobot.task_indices]
        if unknown:
            problems.append(
                Problem(
                    check="tasks.missing",
                    severity="error",
                    episode=episode.episode_index,
                    detail=f"episode {episode.episode_index}: {unknown[0]!r}",
                    hint="add the task to meta/tasks.parquet (task_index as in the rows)",
                )
            )
    return problems


def _file_problems(lerobot: LeRobotSource, episodes: Sequence[SourceEpisode]) -> list[Problem]:
    """Each referenced file that does not exist, per episode, with the near miss when one exists."""
    users: dict[str, list[int]] = {}
    for episode in episodes:
        users.setdefault(episode.data_file, []).append(episode.episode_index)
        for span in episode.videos.values():
            users.setdefault(span.file, []).append(episode.episode_index)
    missing = sorted(set(users) - existing_files(lerobot, users))
    if not missing:
        return []
    near = near_misses(missing, list_files(lerobot))
    return [
        Problem(
            check="files.missing",
            severity="error",
            episode=episode,
            file=relative,
            detail=relative,
            hint=near.get(relative, _NO_NEAR_MISS),
        )
        for relative in missing
        for episode in users[relative]
    ]


_NO_NEAR_MISS = (
    "no file of that name anywhere in the source: restore it, or convert the other episodes with "
    "--skip-bad-episodes"
)


def existing_files(lerobot: LeRobotSource, relatives: Iterable[str]) -> set[str]:
    """Which of ``relatives`` exist: a ``stat`` each locally, one listing per folder for a remote source."""
    wanted = sorted(set(relatives))
    if lerobot.remote is None:
        root = lerobot.root
        return {r for r in wanted if os.path.isfile(root / r)}
    fs, base = storage.url_to_fs(lerobot.remote.url, lerobot.remote.options.options)
    base = base.rstrip("/")
    found: set[str] = set()
    for folder in sorted({posixpath.dirname(r) for r in wanted}):
        try:
            names = fs.ls(f"{base}/{folder}", detail=False)
        except FileNotFoundError:
            continue
        found.update(posixpath.join(folder, posixpath.basename(str(name))) for name in names)
    return found & set(wanted)


def list_files(lerobot: LeRobotSource) -> list[str]:
    """Every file of the source outside ``meta/``, relative to its root (looked up when some are missing)."""
    if lerobot.remote is None:
        root = lerobot.root
        return sorted(
            Path(folder, name).relative_to(root).as_posix()
            for folder, _, names in os.walk(root)
            for name in names
            if not Path(folder).relative_to(root).as_posix().startswith("meta")
        )
    fs, base = storage.url_to_fs(lerobot.remote.url, lerobot.remote.options.options)
    base = base.rstrip("/")
    return sorted(posixpath.relpath(str(name), base) for name in fs.find(base) if "/meta/" not in f"/{name}")


def near_misses(missing: Sequence[str], present: Sequence[str]) -> dict[str, str]:
    """For each missing path, a hint naming the file that is probably meant: the same path in another
    case, under another top folder (``video/`` for ``videos/``), or in another chunk."""
    by_lower = {p.lower(): p for p in present}
    by_tail: dict[str, list[str]] = {}
    by_name: dict[tuple[str, str], list[str]] = {}
    for path in present:
        head, _, tail = path.partition("/")
        by_tail.setdefault(tail.lower(), []).append(path)
        parts = path.split("/")
        by_name.setdefault((parts[0].lower(), parts[-1].lower()), []).append(path)
    hints = {}
    for path in missing:
        head, _, tail = path.partition("/")
        if path.lower() in by_lower:
            found = by_lower[path.lower()]
            hints[path] = f"{found!r} exists (other letter case): rename it, or fix info.json's template"
        elif candidates := [c for c in by_tail.get(tail.lower(), []) if c.split("/")[0] != head]:
            folder = candidates[0].split("/")[0]
            hints[path] = (
                f"the files are under '{folder}/' while info.json's template says '{head}/' (same paths "
                f"after it): rename the folder to '{head}/', or fix the template"
            )
        elif candidates := by_name.get((head.lower(), path.split("/")[-1].lower()), []):
            hints[path] = (
                f"{path.split('/')[-1]!r} exists at {candidates[0]!r}"
                + (f" and {len(candidates) - 1} more place(s)" if len(candidates) > 1 else "")
                + ": another chunk or camera folder; check meta/episodes' chunk_index/file_index"
            )
    return hints
