"""What the checks of ``lerobot-wds check`` report: cases (:class:`Problem`) grouped into findings.

Each check returns :class:`Problem`s, one per case (an episode, a file); :func:`group` turns them into
:class:`Finding`s, one per (check, severity, hint), which list every episode and file they affect.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]
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


def file_errors(check: str, file: str, episodes: Iterable[int], detail: str, hint: str) -> list[Problem]:
    """One error per episode that lives in an unusable ``file`` (so each is named, and skippable)."""
    return [
        Problem(check=check, severity="error", episode=episode, file=file, detail=detail, hint=hint)
        for episode in episodes
    ]


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
