"""Group episodes into shards: a pure function of the source metadata and the options."""

from __future__ import annotations

from dataclasses import dataclass

from ..format import shard_path
from .source import LeRobotSource, SourceEpisode, source_file_size


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardPlan:
    shard_index: int
    path: str  # relative to the dataset root
    episodes: tuple[int, ...]


def estimate_source_bytes(source: LeRobotSource, episode: SourceEpisode) -> int:
    """Source bytes an episode accounts for: its share (by duration / rows) of each file it lives in.

    Needs only file sizes and metadata, so planning opens no video; summed over all episodes it is
    exactly the size of the source's data and video files.
    """
    total = 0.0
    for span in episode.videos.values():
        duration = source.video_duration_s(span.file)
        share = (span.to_timestamp - span.from_timestamp) / duration if duration > 0 else 0.0
        total += source_file_size(source, span.file) * share
    rows = source.data_file_frames(episode.data_file)
    total += source_file_size(source, episode.data_file) * episode.length / max(rows, 1)
    return round(total)


def plan_shards(
    episodes: list[SourceEpisode], estimated_bytes: dict[int, int], target_bytes: int
) -> list[ShardPlan]:
    """Consecutive episodes (index order, so each source file is read front to back) into shards.

    A shard is closed once adding the next episode would pass ``target_bytes``; an episode larger
    than the target gets a shard of its own. Shards hold whole episodes.
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
    return [ShardPlan(shard_index=i, path=shard_path(i), episodes=tuple(g)) for i, g in enumerate(groups)]
