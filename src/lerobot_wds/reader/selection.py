"""Which episodes a dataset streams: by index, by task, by a predicate over episode metadata, by split.

    select_episodes   the manifest's entries that pass every selection option (in episode order)
    EpisodeInfo       what a predicate sees of an episode (the manifest's per-episode metadata)
    val_fraction_of   an episode's place in the train/val split: a fixed hash of its identity

Selection runs once, in ``ShardedLeRobotDataset.__init__``; readers only see the chosen entries. The
split is a pure function of (dataset name, episode_index): the same on every run, machine and release,
whichever other options select, and an episode added later never moves one already there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..format import EpisodeEntry, EpisodeValue, Manifest

Split = Literal["train", "val"]
TaskSelection = str | Sequence[str] | Callable[[str], bool]
EpisodeFilter = Callable[["EpisodeInfo"], bool]

# Part of the hashed identity: changing it would move episodes between train and val for everyone.
SPLIT_HASH_TAG = "lerobot-wds-split-v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class EpisodeInfo:
    """An episode as an ``episode_filter`` predicate sees it (from the manifest: no episode is read)."""

    episode_index: int
    num_frames: int  # LeRobot's episode ``length``
    tasks: tuple[str, ...]  # task strings, in the order of ``task_indices``
    task_indices: tuple[int, ...]
    dataset_from_index: int  # LeRobot's global ``index`` of the episode's first frame
    # the source's own per-episode columns (meta/episodes beyond LeRobot's, e.g. {"success": True});
    # a field is absent where the episode's value was null
    fields: Mapping[str, EpisodeValue] = field(default_factory=dict)


def split_name(manifest: Manifest) -> str:
    """The dataset's identity in the split hash: the Hub repo id, or a local source folder's name (so a
    copy on another machine, at another path, splits the same). The revision is left out: a new
    revision that adds episodes keeps the old ones where they were."""
    location = manifest.source.location.rstrip("/\\")
    if manifest.source.revision is None:  # a local folder
        location = location.replace("\\", "/").rsplit("/", 1)[-1]
    return location


def val_fraction_of(name: str, episode_index: int) -> float:
    """Where ``episode_index`` of dataset ``name`` falls in [0, 1): it is in ``val`` when this is below
    ``val_fraction``. blake2b of ``"lerobot-wds-split-v1:<name>:<episode_index>"``, first 8 bytes as a
    big-endian integer over 2**64: fixed by this definition, not by Python's hash seed or version."""
    key = f"{SPLIT_HASH_TAG}:{name}:{episode_index}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def select_episodes(
    manifest: Manifest,
    tasks_by_index: Mapping[int, str],
    url: str,
    *,
    episodes: Sequence[int] | None = None,
    tasks: TaskSelection | None = None,
    episode_filter: EpisodeFilter | None = None,
    split: Split | None = None,
    val_fraction: float | None = None,
    val_episodes: Sequence[int] | None = None,
) -> list[EpisodeEntry]:
    """The manifest's entries that pass every option given (all of them if none is), in episode order.

    Raises ``ValueError`` for unknown episode indices or task strings, and for an empty selection.
    """
    entries = list(manifest.episodes)
    known = {e.episode_index for e in entries}
    for name, indices in (("episodes", episodes), ("val_episodes", val_episodes)):
        missing = sorted(set(indices or ()) - known)
        if missing:
            raise ValueError(
                f"{url}: {name} {missing[:10]} are not in the manifest; it has {len(known)} episodes"
            )
    if episodes is not None:
        wanted = set(episodes)
        entries = [e for e in entries if e.episode_index in wanted]
    if tasks is not None:
        matches = _task_matcher(tasks, tasks_by_index, url)
        entries = [e for e in entries if any(matches(tasks_by_index.get(t, "")) for t in e.task_indices)]
    if episode_filter is not None:
        entries = [e for e in entries if _passes(episode_filter, _info(e, tasks_by_index), url)]
    if split is not None:
        in_val = _val_membership(split_name(manifest), val_fraction, val_episodes)
        entries = [e for e in entries if in_val(e.episode_index) == (split == "val")]
    if not entries:
        raise ValueError(
            f"{url}: the selection leaves no episodes (of {len(known)}: episodes={_short(episodes)}, "
            f"tasks={tasks!r}, episode_filter={episode_filter!r}, split={split!r}, "
            f"val_fraction={val_fraction!r}, val_episodes={_short(val_episodes)}); expected at least one"
        )
    return sorted(entries, key=lambda e: e.episode_index)


def _task_matcher(tasks: TaskSelection, tasks_by_index: Mapping[int, str], url: str) -> Callable[[str], bool]:
    if callable(tasks):
        return tasks
    wanted = {tasks} if isinstance(tasks, str) else set(tasks)
    unknown = sorted(wanted - set(tasks_by_index.values()))
    if unknown:
        have = sorted(tasks_by_index.values())
        raise ValueError(
            f"{url}: tasks {unknown[:5]} are not among the dataset's {len(have)} tasks (meta/tasks.parquet); "
            f"expected exact task strings, e.g. {have[:3]}, or a predicate over the task string"
        )
    return wanted.__contains__


def _info(entry: EpisodeEntry, tasks_by_index: Mapping[int, str]) -> EpisodeInfo:
    return EpisodeInfo(
        episode_index=entry.episode_index,
        num_frames=entry.num_frames,
        tasks=tuple(tasks_by_index.get(t, "") for t in entry.task_indices),
        task_indices=entry.task_indices,
        dataset_from_index=entry.dataset_from_index,
        fields=dict(entry.fields),
    )


def _passes(episode_filter: EpisodeFilter, info: EpisodeInfo, url: str) -> bool:
    try:
        return bool(episode_filter(info))
    except Exception as exc:
        exc.add_note(f"{url}: while calling episode_filter on episode {info.episode_index}")
        raise


def _val_membership(
    name: str, val_fraction: float | None, val_episodes: Sequence[int] | None
) -> Callable[[int], bool]:
    if val_episodes is not None:
        return set(val_episodes).__contains__
    fraction = float(val_fraction or 0.0)
    return lambda episode_index: val_fraction_of(name, episode_index) < fraction


def _short(indices: Sequence[int] | None) -> str:
    if indices is None:
        return "None"
    listed = list(indices)
    return f"{listed[:5]}{'...' if len(listed) > 5 else ''} ({len(listed)})"
