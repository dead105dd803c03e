"""Incremental updates: what an existing conversion allows, and which source episodes are new.

A LeRobot dataset grows by appending episodes. Converting it again into a destination that holds a
manifest writes shards for the new episodes only (numbered after the existing shards, whose bytes stay
untouched) and a manifest of the next ``generation`` that lists the old shards and episodes first.
"""

from __future__ import annotations

from typing import Any

from .. import format as fmt
from .plan import ConversionPlan
from .source import LeRobotSource, SourceEpisode


def check_same(
    dest: str,
    existing: fmt.Manifest,
    lerobot: LeRobotSource,
    ours: fmt.SourceInfo,
    wanted_options: dict[str, Any],
) -> None:
    """An existing conversion may be extended only from the same source with the same options.

    The episode selection may grow (an update); everything else that shapes the bytes must be equal. The
    revision may move on (a Hub repo that gained episodes has a new commit): :func:`update_episodes`
    checks that the converted episodes did not change.
    """
    theirs = existing.source
    options = {k: v for k, v in existing.options.items() if k != "episodes"}
    wanted = {k: v for k, v in wanted_options.items() if k != "episodes"}
    if theirs.location != ours.location or options != wanted:
        raise ValueError(
            f"{dest}: holds a conversion of {theirs.location}@{theirs.revision} with options "
            f"{existing.options}; got {ours.location}@{ours.revision} with {wanted_options}; "
            "choose another destination or pass --overwrite"
        )
    schema = (existing.fps, existing.features, existing.camera_keys)
    if schema != (lerobot.fps, lerobot.features, lerobot.camera_keys):
        raise ValueError(
            f"{dest}: the source's fps, features or cameras changed since it was converted; got fps "
            f"{lerobot.fps}, cameras {lerobot.camera_keys}; expected fps {existing.fps}, cameras "
            f"{existing.camera_keys} and the same features; pass --overwrite to convert it again"
        )


def update_episodes(dest: str, existing: fmt.Manifest, plan: ConversionPlan) -> list[SourceEpisode]:
    """The planned episodes that ``existing`` lacks, after checking the ones it has are unchanged.

    An episode is unchanged if it is still selected and keeps its length, its first global ``index`` and
    its tasks (what the manifest records); a LeRobot dataset that grows by appending episodes keeps all
    three. Anything else is refused with the list of what changed.
    """
    source = plan.source
    selected = {episode.episode_index: episode for episode in plan.episodes}
    changed: list[str] = []
    for entry in existing.episodes:
        episode = selected.get(entry.episode_index)
        if episode is None:
            changed.append(f"episode {entry.episode_index}: no longer selected (or in the source)")
            continue
        now = (
            episode.length,
            episode.dataset_from_index,
            tuple(source.task_indices.get(t, -1) for t in episode.tasks),
        )
        then = (entry.num_frames, entry.dataset_from_index, entry.task_indices)
        if now != then:
            changed.append(
                f"episode {entry.episode_index}: (num_frames, dataset_from_index, task_indices) "
                f"{then} -> {now}"
            )
    if changed:
        listed = "; ".join(changed[:20]) + (f"; and {len(changed) - 20} more" if len(changed) > 20 else "")
        raise ValueError(
            f"{dest}: {len(changed)} converted episode(s) changed or left the selection: {listed}; "
            "an update only appends episodes; pass --overwrite to convert everything again"
        )
    have = {entry.episode_index for entry in existing.episodes}
    return [episode for episode in plan.episodes if episode.episode_index not in have]
