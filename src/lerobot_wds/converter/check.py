"""``lerobot-wds check``: every defect of a LeRobot v3 source that matters for an exact conversion.

Checks are pure functions over what the source holds (``info.json``, the episode table, the tasks,
the data parquet's index columns, the video containers' packet index) that return :class:`Finding`s;
:func:`check_source` runs them and groups what they report (:mod:`.findings`). Four levels,
cheapest first, each including the ones before it:

- ``meta``: ``info.json``, the episode table, the tasks, and whether every referenced file exists
  (one ``stat`` per file, or one listing per folder for a remote source): no file is read
  (:mod:`.checkmeta`);
- ``rows``: the data files' ``episode_index``/``frame_index``/``timestamp``/``index``/``task_index``
  columns (:mod:`.checkrows`);
- ``videos``: each mp4's stream parameters and packet index, without decoding (:mod:`.probe`);
- ``deep``: each episode's segment cut as ``convert`` cuts it and decoded (local sources).

``convert`` runs them before anything is written: ``videos`` for a local source, ``meta`` for a
remote one (its files are read by the shard tasks, which fail on what ``meta`` cannot see).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .checkmeta import meta_problems
from .checkrows import row_problems
from .findings import Finding, Problem, Severity, group
from .probe import decode_problems, video_problems
from .source import LeRobotSource, SourceEpisode, open_source

__all__ = [
    "LEVELS",
    "CheckConfig",
    "CheckReport",
    "Finding",
    "Problem",
    "Severity",
    "check_opened",
    "check_source",
]

LEVELS = ("meta", "rows", "videos", "deep")


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
