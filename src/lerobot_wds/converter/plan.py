"""Group episodes into shards: a pure function of the source metadata, its file sizes and the options.

Linear in the number of episodes: each file's duration, row count and size is found once (issue 14:
130,000 episodes x 3 cameras are planned in seconds; benchmarks/results/convert_plan.json).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..format import SkippedEpisode, shard_path

if TYPE_CHECKING:  # annotations only: source.py imports this module (through hub.py and workdir.py)
    from .check import CheckReport
    from .source import LeRobotSource, SourceEpisode


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardPlan:
    shard_index: int
    path: str  # relative to the dataset root
    episodes: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversionPlan:
    """What a conversion writes: the source, its selected episodes and the shards they go into.

    Built by :func:`lerobot_wds.converter.convert.plan_conversion`, which ``convert`` and
    ``lerobot-wds convert --dry-run`` both call.
    """

    source: LeRobotSource
    episodes: list[SourceEpisode]  # the selection, in index order
    estimated_bytes: dict[int, int]  # episode_index -> source bytes it accounts for
    shards: list[ShardPlan]
    checked: CheckReport | None = None  # what the checks run before planning found
    skipped: tuple[SkippedEpisode, ...] = ()  # selected episodes left out (--skip-bad-episodes)

    @property
    def num_frames(self) -> int:
        return sum(episode.length for episode in self.episodes)

    @property
    def source_bytes(self) -> int:
        """Source data + video bytes that the selected episodes account for (estimated by share)."""
        return sum(self.estimated_bytes.values())

    def shard_rows(self) -> list[dict[str, Any]]:
        """One JSON-able row per shard: index, path, episodes, frames, estimated source bytes."""
        lengths = {episode.episode_index: episode.length for episode in self.episodes}
        return [
            {
                "shard_index": shard.shard_index,
                "path": shard.path,
                "num_episodes": len(shard.episodes),
                "episodes": list(shard.episodes),
                "num_frames": sum(lengths[e] for e in shard.episodes),
                "estimated_bytes": sum(self.estimated_bytes[e] for e in shard.episodes),
            }
            for shard in self.shards
        ]

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-able values (``lerobot-wds convert --dry-run --json``)."""
        return {
            "source": self.source.location,
            "revision": self.source.revision,
            "num_shards": len(self.shards),
            "num_episodes": len(self.episodes),
            "num_frames": self.num_frames,
            "estimated_bytes": self.source_bytes,
            "shards": self.shard_rows(),
            "skipped_episodes": [
                {"episode_index": s.episode_index, "checks": list(s.checks), "reason": s.reason}
                for s in self.skipped
            ],
            "findings": [f.to_dict() for f in self.checked.findings] if self.checked else [],
        }


def estimate_source_bytes(source: LeRobotSource, episodes: Sequence[SourceEpisode]) -> dict[int, int]:
    """Source bytes each episode accounts for: its share (by duration / rows) of each file it lives in.

    Needs only file sizes and metadata, so planning opens no video; summed over all episodes it is
    exactly the size of the source's data and video files. Each file's duration, rows and size is
    looked up once (``LeRobotSource.video_durations_s``, ``data_file_rows``, one ``stat``, or for a
    remote source one listing per folder: nothing is downloaded).
    """
    durations = source.video_durations_s
    rows = source.data_file_rows
    files = {episode.data_file for episode in episodes}
    files.update(span.file for episode in episodes for span in episode.videos.values())
    size = source.file_sizes(sorted(files)).__getitem__
    estimates = {}
    for episode in episodes:
        total = 0.0  # the same float operations, in the same order, as the first planner: equal plans
        for span in episode.videos.values():
            duration = durations[span.file]
            share = (span.to_timestamp - span.from_timestamp) / duration if duration > 0 else 0.0
            total += size(span.file) * share
        total += size(episode.data_file) * episode.length / max(rows[episode.data_file], 1)
        estimates[episode.episode_index] = round(total)
    return estimates


def plan_shards(
    episodes: Sequence[SourceEpisode],
    estimated_bytes: dict[int, int],
    target_bytes: int,
    first_index: int = 0,
) -> list[ShardPlan]:
    """Consecutive episodes (index order, so each source file is read front to back) into shards.

    A shard is closed once adding the next episode would pass ``target_bytes``; an episode larger
    than the target gets a shard of its own. Shards hold whole episodes. Shards are numbered from
    ``first_index`` (an update appends shards after the ones a destination has).
    """
    groups: list[list[int]] = []
    size = 0
    for episode in episodes:
        episode_bytes = estimated_bytes[episode.episode_index]
        if not groups or (size + episode_bytes > target_bytes and groups[-1]):
            groups.append([])
            size = 0
        groups[-1].append(episode.episode_index)
        size += episode_bytes
    return [
        ShardPlan(shard_index=i, path=shard_path(i), episodes=tuple(g))
        for i, g in enumerate(groups, start=first_index)
    ]


def plan_episodes(
    source: LeRobotSource,
    episodes: Sequence[SourceEpisode],
    target_bytes: int,
    *,
    checked: CheckReport | None = None,
    skipped: tuple[SkippedEpisode, ...] = (),
) -> ConversionPlan:
    """Estimate the selected episodes' bytes and group them into shards of about ``target_bytes``."""
    estimates = estimate_source_bytes(source, episodes)
    return ConversionPlan(
        source=source,
        episodes=list(episodes),
        estimated_bytes=estimates,
        shards=plan_shards(episodes, estimates, target_bytes),
        checked=checked,
        skipped=skipped,
    )
