"""Pure pieces of the reader: windows, epoch order, splitting."""

from __future__ import annotations

import numpy as np
import pytest

from lerobot_wds.format import EpisodeEntry
from lerobot_wds.reader.order import WorkerInfo, episode_order, plan_slot
from lerobot_wds.reader.windows import delta_indices, window_indices


def test_window_indices_clamp_and_pad() -> None:
    indices, is_pad = window_indices(5, 1, np.array([-3, -1, 0, 2, 4]))
    assert indices.tolist() == [0, 0, 1, 3, 4]
    assert is_pad.tolist() == [True, False, False, False, True]


def test_delta_indices_round_like_lerobot() -> None:
    assert delta_indices({"a": [-1 / 30, 0.0, 0.1, 4.0]}, 30)["a"].tolist() == [-1, 0, 3, 120]


def entries(lengths: list[int]) -> list[EpisodeEntry]:
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
    return [
        EpisodeEntry(episode_index=i, num_frames=n, dataset_from_index=f, shard="s", offset_bytes=0,
                     size_bytes=1, task_indices=(0,))
        for i, (n, f) in enumerate(zip(lengths, first, strict=True))
    ]  # fmt: skip


@pytest.mark.parametrize(("world_size", "num_workers"), [(1, 1), (2, 2), (3, 1), (1, 3), (4, 3), (7, 8)])
def test_every_frame_goes_to_exactly_one_reader(world_size: int, num_workers: int) -> None:
    episodes = entries([30 + (7 * i) % 50 for i in range(40)])
    seen: list[tuple[int, int]] = []
    for rank in range(world_size):
        for worker in range(num_workers):
            who = WorkerInfo(rank=rank, world_size=world_size, worker=worker, num_workers=num_workers)
            plan = plan_slot(episodes, who, seed=1, epoch=2, shuffle=True)
            seen += [(p.entry.episode_index, f) for p in plan.parts for f in range(p.frame_from, p.frame_to)]
    assert sorted(seen) == [(e.episode_index, f) for e in episodes for f in range(e.num_frames)]


@pytest.mark.parametrize("lengths", [[5] * 7, [1, 50, 3, 2, 9, 40, 7], [2, 3], [100]])
@pytest.mark.parametrize(("world_size", "num_workers"), [(1, 1), (2, 1), (3, 2), (4, 3), (16, 8)])
def test_frame_split_pads_at_most_one_sample_per_reader(
    lengths: list[int], world_size: int, num_workers: int
) -> None:
    episodes = entries(lengths)
    total = sum(lengths)
    plans = {
        (rank, worker): plan_slot(
            episodes, WorkerInfo(rank=rank, world_size=world_size, worker=worker, num_workers=num_workers),
            seed=3, epoch=0, shuffle=True,
        )
        for rank in range(world_size) for worker in range(num_workers)
    }  # fmt: skip
    owned = [plan.num_frames for plan in plans.values()]
    assert sum(owned) == total
    assert max(owned) - min(owned) <= 1
    assert all(0 <= plan.num_repeated <= 1 for plan in plans.values())
    for worker in range(num_workers):  # worker w yields the same count on every rank (DDP)
        assert len({plans[rank, worker].num_samples for rank in range(world_size)}) == 1
    repeated = sum(plan.num_repeated for plan in plans.values())
    assert repeated == -total % world_size  # as DistributedSampler: up to a multiple of the world size
    assert repeated == sum(plan.num_samples for plan in plans.values()) - total


def test_frame_split_shares_a_boundary_episode() -> None:
    episodes = entries([10, 10])
    plans = [
        plan_slot(episodes, WorkerInfo(rank=r, world_size=3), seed=0, epoch=0, shuffle=False)
        for r in (0, 1, 2)
    ]
    assert [[(p.entry.episode_index, p.frame_from, p.frame_to) for p in plan.parts] for plan in plans] == [
        [(0, 0, 7)],
        [(0, 7, 10), (1, 0, 4)],
        [(1, 4, 10)],
    ]
    assert [plan.num_samples for plan in plans] == [7, 7, 7]
    assert [plan.num_repeated for plan in plans] == [0, 0, 1]


def test_episode_order_is_a_pure_function() -> None:
    episodes = entries([10] * 50)
    assert episode_order(episodes, seed=1, epoch=0, shuffle=True) == episode_order(
        episodes, seed=1, epoch=0, shuffle=True
    )
    assert episode_order(episodes, seed=1, epoch=0, shuffle=True) != episode_order(
        episodes, seed=1, epoch=1, shuffle=True
    )
    assert episode_order(episodes, seed=1, epoch=0, shuffle=False) == list(range(50))


def test_worker_info_is_validated() -> None:
    with pytest.raises(ValueError, match="rank"):
        WorkerInfo(rank=2, world_size=2)
