"""The exact order of one small epoch, written down: a saved state resumes correctly in a later
version only if that version draws the same (episode_index, frame_index) sequence from the same seed.
A failure here means the stream a saved state refers to changed: make such a change on purpose (the
state envelope must then refuse old states), never by updating these literals to match.

The literals were printed by the code they pin, not derived by hand.
"""

from __future__ import annotations

import pytest

from lerobot_wds.format import EpisodeEntry
from lerobot_wds.reader.order import WorkerInfo, episode_order, plan_slot, stream_seed
from lerobot_wds.reader.schedule import DrawSchedule


def reader_draws(
    episodes: list[EpisodeEntry],
    who: WorkerInfo,
    *,
    seed: int,
    epoch: int,
    frame_order: str,
    pool_size: int,
) -> list[tuple[int, int]]:
    """Every (episode_index, frame_index) that reader ``who`` yields in ``epoch``, padding included.

    The one place this file touches the reader's stages: the schedule, wired as pipeline.build_pipeline
    does (it needs no bytes). A refactor of the stages adapts this only.
    """
    plan = plan_slot(episodes, who, seed=seed, epoch=epoch, shuffle=True)
    schedule = DrawSchedule(
        plan,
        seed=stream_seed(seed, epoch, who.slot),
        pool_size=pool_size,
        max_pool_frames=None,
        shuffle=True,
        forward=frame_order == "forward",
    )
    return [(draw.entry.episode_index, draw.frame_index) for draw in schedule]


LENGTHS = [7, 3, 12, 5, 9, 4, 11, 6, 8, 2]  # 67 frames; two ranks own 34 / 33 (+1 repeat)
SEED = 7
POOL_SIZE = 4  # small, so that episodes leave and enter the pool within the pinned draws


def make_episodes() -> list[EpisodeEntry]:
    starts = [sum(LENGTHS[:i]) for i in range(len(LENGTHS))]
    return [
        EpisodeEntry(episode_index=i, num_frames=n, dataset_from_index=start, shard=f"shard-{i // 4}",
                     offset_bytes=0, size_bytes=1, task_indices=(0,))
        for i, (n, start) in enumerate(zip(LENGTHS, starts, strict=True))
    ]  # fmt: skip


def test_stream_seed_is_pinned() -> None:
    assert stream_seed(SEED, 0) == 866425751386849914
    assert stream_seed(SEED, 0, 0) == 3943063234453129267
    assert stream_seed(SEED, 0, 1) == 5019799533825467405
    assert stream_seed(SEED, 1, 0) == 2430423190520051312


def test_episode_order_is_pinned() -> None:
    episodes = make_episodes()
    assert episode_order(episodes, seed=SEED, epoch=0, shuffle=True) == [5, 8, 3, 9, 7, 6, 4, 2, 0, 1]
    assert episode_order(episodes, seed=SEED, epoch=1, shuffle=True) == [0, 5, 8, 4, 6, 1, 2, 7, 3, 9]


# (rank, world_size, frame_order) -> (number of draws, first 20 draws, draws past the rank's own frames).
# With two ranks, rank 0 owns frames 0-33 of the epoch's sequence (ending inside episode 6) and rank 1
# the other 33, repeating its first draw.
PINNED = {
    (0, 1, "shuffled"): (67, [
        (8, 0), (8, 7), (8, 1), (3, 4), (3, 1), (9, 1), (5, 0), (3, 2), (8, 5), (8, 3),
        (9, 0), (7, 3), (5, 1), (5, 2), (8, 4), (8, 6), (7, 2), (7, 1), (3, 3), (3, 0),
    ], []),
    (0, 1, "forward"): (67, [
        (3, 0), (9, 0), (8, 0), (8, 1), (3, 1), (8, 2), (8, 3), (8, 4), (3, 2), (9, 1),
        (8, 5), (5, 0), (3, 3), (7, 0), (7, 1), (8, 6), (7, 2), (3, 4), (7, 3), (6, 0),
    ], []),
    (0, 2, "shuffled"): (34, [
        (8, 0), (8, 7), (8, 1), (3, 4), (3, 1), (9, 1), (5, 0), (3, 2), (8, 5), (8, 3),
        (9, 0), (7, 3), (5, 1), (5, 2), (8, 4), (8, 6), (7, 2), (7, 1), (3, 3), (3, 0),
    ], []),
    (0, 2, "forward"): (34, [
        (3, 0), (9, 0), (8, 0), (8, 1), (3, 1), (8, 2), (8, 3), (8, 4), (3, 2), (9, 1),
        (8, 5), (5, 0), (3, 3), (7, 0), (7, 1), (8, 6), (7, 2), (3, 4), (7, 3), (7, 4),
    ], []),
    (1, 2, "shuffled"): (34, [
        (4, 1), (2, 11), (0, 1), (0, 0), (2, 6), (4, 0), (2, 8), (0, 3), (2, 7), (6, 10),
        (4, 3), (0, 5), (2, 2), (4, 2), (2, 4), (4, 4), (4, 5), (0, 4), (4, 8), (2, 10),
    ], [(4, 1)]),
    (1, 2, "forward"): (34, [
        (4, 0), (2, 0), (2, 1), (0, 0), (2, 2), (2, 3), (0, 1), (4, 1), (0, 2), (4, 2),
        (2, 4), (4, 3), (4, 4), (6, 9), (4, 5), (2, 5), (2, 6), (2, 7), (4, 6), (6, 10),
    ], [(4, 0)]),
}  # fmt: skip


@pytest.mark.parametrize("key", PINNED, ids=[f"rank{r}of{w}-{order}" for r, w, order in PINNED])
def test_draws_are_pinned(key: tuple[int, int, str]) -> None:
    rank, world_size, frame_order = key
    num_draws, first, repeats = PINNED[key]
    who = WorkerInfo(rank=rank, world_size=world_size)
    draws = reader_draws(
        make_episodes(),
        who,
        seed=SEED,
        epoch=0,
        frame_order=frame_order,
        pool_size=POOL_SIZE,
    )
    assert len(draws) == num_draws
    assert draws[:20] == first
    own_frames = num_draws - len(repeats)
    assert draws[own_frames:] == repeats
    assert len(set(draws[:own_frames])) == own_frames  # each of the rank's own frames once
