"""DrawSchedule: every frame drawn once, padding repeats the first draws, last draws marked, skip = draws."""

from __future__ import annotations

from collections import Counter

import pytest
from test_order import entries

from lerobot_wds.reader.order import EpisodePart, SlotPlan, WorkerInfo, plan_slot
from lerobot_wds.reader.order import whole as whole_part
from lerobot_wds.reader.schedule import Draw, DrawSchedule


def schedule(plan: SlotPlan, **options: object) -> DrawSchedule:
    defaults: dict[str, object] = {
        "seed": 7, "pool_size": 3, "max_pool_frames": None, "shuffle": True, "forward": False,
    }  # fmt: skip
    return DrawSchedule(plan, **(defaults | options))  # type: ignore[arg-type]


def whole(lengths: list[int]) -> SlotPlan:
    parts = [whole_part(e) for e in entries(lengths)]
    return SlotPlan(parts=parts, pad_parts=parts, num_samples=sum(lengths), num_repeated=0)


def keys(draws: list[Draw]) -> list[tuple[int, int]]:
    return [(d.entry.episode_index, d.frame_index) for d in draws]


@pytest.mark.parametrize("options", [{}, {"forward": True}, {"shuffle": False}, {"max_pool_frames": 10}])
def test_every_frame_is_drawn_once_and_each_admission_ends_with_one_last_draw(options: dict) -> None:
    lengths = [5, 9, 3, 12, 7, 4]
    draws = list(schedule(whole(lengths), **options))
    assert sorted(keys(draws)) == [(e, f) for e, n in enumerate(lengths) for f in range(n)]
    lasts = [d for d in draws if d.last]
    assert sorted(d.admission for d in lasts) == list(range(len(lengths)))
    for last in lasts:  # nothing of an admission after its last draw
        position = draws.index(last)
        assert all(d.admission != last.admission for d in draws[position + 1 :])


def test_forward_order_draws_each_episode_in_increasing_frames() -> None:
    draws = list(schedule(whole([5, 9, 3, 12]), forward=True))
    for episode in range(4):
        frames = [d.frame_index for d in draws if d.entry.episode_index == episode]
        assert frames == sorted(frames)


def test_without_shuffle_draws_come_in_episode_order() -> None:
    assert keys(list(schedule(whole([3, 2]), shuffle=False))) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]


def test_padding_repeats_the_readers_own_first_draws_as_new_admissions() -> None:
    episodes = entries([6, 2, 5, 4, 4])
    plans = [
        plan_slot(episodes, WorkerInfo(rank=r, world_size=2), seed=0, epoch=0, shuffle=True) for r in (0, 1)
    ]
    plan = max(plans, key=lambda p: p.num_repeated)
    assert plan.num_repeated > 0
    draws = list(schedule(plan))
    own = plan.num_frames
    assert len(draws) == plan.num_samples
    assert keys(draws[own:]) == keys(draws[: plan.num_repeated])
    assert min(d.admission for d in draws[own:]) >= len(plan.parts)  # named apart from the first reads


def test_skip_restores_the_rest_of_the_stream() -> None:
    plan = whole([5, 9, 3, 12, 7])
    reference = keys(list(schedule(plan)))
    for cut in (0, 1, 13, len(reference) - 1, len(reference)):
        restored = schedule(plan)
        restored.skip(cut)
        assert restored.draws == cut
        assert keys(list(restored)) == reference[cut:]
    over = schedule(plan)
    with pytest.raises(StopIteration):
        over.skip(len(reference) + 1)


def test_draws_depend_on_the_seed_only_through_the_order() -> None:
    plan = whole([5, 9, 3, 12, 7])
    first, second = keys(list(schedule(plan, seed=1))), keys(list(schedule(plan, seed=2)))
    assert first != second
    assert Counter(first) == Counter(second)


def test_a_part_of_an_episode_draws_only_its_frames() -> None:
    episodes = entries([6, 9, 4])
    parts = [EpisodePart(episodes[0], 4, 6), whole_part(episodes[2]), EpisodePart(episodes[1], 0, 3)]
    plan = SlotPlan(parts=parts, pad_parts=parts, num_samples=9, num_repeated=0)
    for options in ({}, {"forward": True}, {"shuffle": False}):
        draws = list(schedule(plan, **options))
        expected = [(0, 4), (0, 5), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (2, 3)]
        assert sorted(keys(draws)) == expected
        assert sum(d.last for d in draws) == 3  # each part's last draw releases its episode
