"""``lerobot-wds check``: every defect of a LeRobot v3 source that matters for an exact conversion.

Checks are pure functions over what the source holds (``info.json``, the episode table, the tasks,
the data parquet's index columns, the video containers' packet index) that return :class:`Finding`s;
:func:`check_source` runs them and groups what they report. Three levels, cheapest first:

- ``meta``: ``info.json``, the episode table, the tasks, and whether every referenced file exists
  (one ``stat`` per file, or one listing per folder for a remote source): no file is read;
- ``rows``: the data files' ``episode_index``/``frame_index``/``timestamp``/``index``/``task_index``
  columns (:mod:`.checkrows`);
- ``videos``: each mp4's stream parameters and packet index, without decoding (:mod:`.probe`);
- ``deep``: each episode's segment cut as ``convert`` cuts it and decoded (local sources).

``convert`` runs them before anything is written: ``videos`` for a local source, ``meta`` for a
remote one (its files are downloaded by the shard tasks; they fail on what ``meta`` cannot see).
"""

from __future__ import annotations

import logging
import os
import posixpath
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from .. import storage
from .source import LeRobotSource, SourceEpisode, open_source

logger = logging.getLogger(__name__)

Severity = Literal["error", "warning"]
LEVELS = ("meta", "rows", "videos", "deep")
_EXAMPLES = 3  # a finding's message quotes this many cases, then counts the rest


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One defect kind, with every episode and file it affects (``lerobot-wds check --json``)."""

    check: str  # e.g. "files.missing", "rows.frame_index", "videos.keyframe"
    severity: Severity  # "error": the episodes cannot be converted exactly; "warning": they can
    episodes: tuple[int, ...]  # affected episode indices, sorted; () when the whole dataset is
    files: tuple[str, ...]  # affected files, relative to the source root, sorted
    message: str
    hint: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity,
            "episodes": list(self.episodes),
            "files": list(self.files),
            "message": self.message,
            "hint": self.hint,
        }

    def text(self, max_episodes: int = 10) -> str:
        """One paragraph: severity, check, message, the episodes (first ``max_episodes``), the hint."""
        lines = [f"{self.severity}: {self.check}: {self.message}"]
        if self.episodes:
            lines.append(f"  episodes ({len(self.episodes)}): {_spans(self.episodes, max_episodes)}")
        if self.files:
            more = f" and {len(self.files) - 3} more" if len(self.files) > 3 else ""
            lines.append(f"  files ({len(self.files)}): {', '.join(self.files[:3])}{more}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


@dataclass(slots=True)
class Problem:
    """One case found by a check, before grouping: one episode (or none) and one file (or none)."""

    check: str
    severity: Severity
    detail: str
    episode: int | None = None
    file: str | None = None
    hint: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckReport:
    """What :func:`check_source` found. ``findings`` are errors first, then warnings, by check name."""

    location: str
    levels: tuple[str, ...]
    num_episodes: int  # episodes checked (the selection)
    findings: list[Finding] = field(default_factory=list)
    elapsed_s: float = 0.0
    streams: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # camera -> distinct streams
    # episode index -> "check: detail" of each error-level case naming it (its own, not its group's)
    reasons: dict[int, list[str]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        """No error-level finding (warnings allowed)."""
        return not self.errors

    @property
    def dataset_errors(self) -> list[Finding]:
        """Errors that affect no episode in particular: skipping episodes cannot get past them."""
        return [f for f in self.errors if not f.episodes]

    def bad_episodes(self) -> dict[int, list[Finding]]:
        """Episode index -> the error-level findings naming it."""
        bad: dict[int, list[Finding]] = {}
        for finding in self.errors:
            for episode in finding.episodes:
                bad.setdefault(episode, []).append(finding)
        return dict(sorted(bad.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.location,
            "levels": list(self.levels),
            "num_episodes": self.num_episodes,
            "num_errors": len(self.errors),
            "num_warnings": len(self.findings) - len(self.errors),
            "bad_episodes": list(self.bad_episodes()),
            "elapsed_s": round(self.elapsed_s, 3),
            "streams": self.streams,
            "findings": [f.to_dict() for f in self.findings],
        }

    def text(self) -> str:
        """Every finding, then one summary line."""
        bad = self.bad_episodes()
        summary = (
            f"{self.location}: {self.num_episodes} episodes checked ({', '.join(self.levels)}) in "
            f"{self.elapsed_s:.1f} s: {len(self.errors)} error(s), "
            f"{len(self.findings) - len(self.errors)} warning(s); "
            + (f"{len(bad)} episode(s) cannot be converted" if bad else "every episode can be converted")
            + (
                f"; {len(self.dataset_errors)} error(s) affect the whole dataset"
                if self.dataset_errors
                else ""
            )
        )
        return "\n".join([*(f.text() for f in self.findings), summary])


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckConfig:
    """Options of :func:`check_source`."""

    episodes: tuple[int, ...] | None = None  # None: every episode
    level: str = "videos"  # the last level run (see LEVELS); each includes the ones before it
    revision: str | None = None  # Hub revision of the source
    # for a remote source's fsspec filesystem; repr=False keeps credentials out of logs and tracebacks
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"CheckConfig.level: got {self.level!r}; expected one of {list(LEVELS)}")


def check_source(source: str, config: CheckConfig | None = None) -> CheckReport:
    """Check a LeRobot v3 source (local folder, Hub repo id or URL) and report every defect found.

    A source whose ``meta/`` cannot be read at all (no ``info.json``, an unsupported version, an
    ``info.json`` without fps or templates) is one dataset-level error finding, not an exception.

    Example:
        >>> report = check_source("tests/data/tiny")
        >>> report.ok, report.num_episodes
        (True, 6)
    """
    config = config or CheckConfig()
    started = time.perf_counter()
    try:
        lerobot = open_source(source, revision=config.revision, storage_options=config.storage_options)
    except (ValueError, FileNotFoundError) as exc:
        finding = Finding(
            check="meta.unreadable",
            severity="error",
            episodes=(),
            files=(),
            message=str(exc),
            hint="fix meta/ first: nothing else can be checked without it",
        )
        return CheckReport(
            location=source,
            levels=("meta",),
            num_episodes=0,
            findings=[finding],
            elapsed_s=time.perf_counter() - started,
        )
    try:
        report = check_opened(lerobot, lerobot.select(config.episodes), level=config.level)
    finally:
        lerobot.close()
    return _with_elapsed(report, time.perf_counter() - started)


def check_opened(lerobot: LeRobotSource, episodes: Sequence[SourceEpisode], *, level: str) -> CheckReport:
    """The checks up to ``level`` on an opened source's selected ``episodes`` (what ``convert`` runs)."""
    from .checkrows import row_problems
    from .probe import decode_problems, video_problems

    started = time.perf_counter()
    levels = LEVELS[: LEVELS.index(level) + 1]
    problems = meta_problems(lerobot, episodes)
    missing = {p.file for p in problems if p.check == "files.missing"}
    streams: dict[str, list[dict[str, Any]]] = {}
    if "rows" in levels:
        problems += row_problems(lerobot, [e for e in episodes if e.data_file not in missing])
    if "videos" in levels and lerobot.camera_keys:
        found, streams = video_problems(lerobot, episodes, skip_files=missing)
        problems += found
    if "deep" in levels and lerobot.camera_keys:
        bad = {(p.episode, p.file) for p in problems if p.severity == "error"}
        skip = {
            (e.episode_index, key)
            for e in episodes
            for key, span in e.videos.items()
            if (e.episode_index, span.file) in bad
            or (e.episode_index, e.data_file) in bad
            or span.file in missing
        }
        problems += decode_problems(lerobot, episodes, skip=skip)
    reasons: dict[int, list[str]] = {}
    for problem in problems:
        if problem.severity == "error" and problem.episode is not None:
            reasons.setdefault(problem.episode, []).append(f"{problem.check}: {problem.detail}")
    return CheckReport(
        location=lerobot.location,
        levels=levels,
        num_episodes=len(episodes),
        findings=group(problems),
        elapsed_s=time.perf_counter() - started,
        streams=streams,
        reasons=reasons,
    )


def _with_elapsed(report: CheckReport, elapsed_s: float) -> CheckReport:
    return replace(report, elapsed_s=elapsed_s)


# ----------------------------------------------------------------------------------- grouping

_TITLES = {
    "info.features": "info.json lacks LeRobot's standard columns",
    "episodes.duplicate": "episode_index listed more than once in meta/episodes",
    "episodes.gap": "episode indices are not 0..N-1",
    "episodes.length": "episode length is not positive",
    "episodes.from_index": "dataset_from_index is not contiguous (previous episode's from + length)",
    "tasks.missing": "episode tasks not in meta/tasks.parquet",
    "files.missing": "files referenced by meta/episodes are missing",
    "rows.unreadable": "data files cannot be read",
    "rows.count": "rows in the data file differ from the episode's length",
    "rows.frame_index": "frame_index is not 0..length-1 in row order",
    "rows.timestamp": "timestamps do not increase",
    "rows.timestamp_grid": "timestamps are off the frame_index / fps grid",
    "rows.index": "index is not dataset_from_index + frame_index",
    "rows.task_index": "task_index not in meta/tasks.parquet",
    "rows.orphans": "rows belong to no episode of meta/episodes",
    "videos.unreadable": "video files cannot be demuxed",
    "videos.codec": "the stream's codec differs from info.json",
    "videos.pix_fmt": "the stream's pixel format differs from info.json",
    "videos.size": "the stream's frame size differs from info.json",
    "videos.fps": "the stream's frame rate differs from info.json's fps",
    "videos.span": "from/to_timestamp lie outside the video file",
    "videos.frames": "frames in the episode's segment differ from its length",
    "videos.keyframe": "the episode's segment does not start on a keyframe",
    "videos.decode": "the episode's stream-copied segment does not decode to its frames",
    "videos.deep": "segments not decoded",
}


def group(problems: Iterable[Problem]) -> list[Finding]:
    """One finding per (check, severity, hint): its episodes and files, a few examples, the count."""
    groups: dict[tuple[str, str, str], list[Problem]] = {}
    for problem in problems:
        groups.setdefault((problem.check, problem.severity, problem.hint), []).append(problem)
    findings = []
    for (check, severity, hint), cases in groups.items():
        examples = list(dict.fromkeys(case.detail for case in cases))
        more = f"; and {len(examples) - _EXAMPLES} more" if len(examples) > _EXAMPLES else ""
        title = _TITLES.get(check, check)
        findings.append(
            Finding(
                check=check,
                severity="error" if severity == "error" else "warning",
                episodes=tuple(sorted({c.episode for c in cases if c.episode is not None})),
                files=tuple(sorted({c.file for c in cases if c.file is not None})),
                message=f"{title}: {'; '.join(examples[:_EXAMPLES])}{more}",
                hint=hint,
            )
        )
    findings.sort(key=lambda f: (f.severity != "error", f.check, f.files, f.episodes))
    return findings


def _spans(indices: Sequence[int], limit: int) -> str:
    """``0-3, 7, 9-12`` for sorted indices, the first ``limit`` runs, then a count of the rest."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit])
    return text + (f" and {len(runs) - limit} more runs" if len(runs) > limit else "")


# ------------------------------------------------------------------------------- meta level

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
