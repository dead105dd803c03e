"""Elastic resume, pure: the rest of an epoch saved by W x N readers, re-planned for W' x N' readers,
covers every frame not yet consumed exactly once, with equal samples per rank (no bytes involved)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from test_order import entries

from lerobot_wds.reader.config import ReaderConfig
from lerobot_wds.reader.elastic import Resume, remaining_positions, slice_intervals
from lerobot_wds.reader.elasticstate import elastic_state
from lerobot_wds.reader.order import WorkerInfo, reader_sizes
from lerobot_wds.reader.pipeline import reader_schedule
from lerobot_wds.reader.schedule import Draw

LENGTHS = [7, 3, 12, 5, 9, 4, 11, 6, 8, 2, 15, 1]  # 83 frames
CONFIG = ReaderConfig(seed=3, episode_pool_size=3)
EPOCH = 2


def draws_of(who: WorkerInfo, resume: Resume | None = None) -> list[Draw]:
    return list(reader_schedule(entries(LENGTHS), CONFIG, who, EPOCH, resume=resume))


def layout(world_size: int, num_workers: int) -> list[WorkerInfo]:
    return [
        WorkerInfo(rank=r, world_size=world_size, worker=w, num_workers=num_workers)
        for r in range(world_size)
        for w in range(num_workers)
    ]


def state(who: WorkerInfo, draws: int, **extra: object) -> dict[str, object]:
    """A reader state as ShardedLeRobotDataset.state_dict writes it (envelope values are placeholders)."""
    return {"format_version": 1, "fingerprint": "f", "epoch": EPOCH, "draws": draws, "rank": who.rank,
            "world_size": who.world_size, "worker": who.worker, "num_workers": who.num_workers,
            "partition": "frames", "num_frames": sum(LENGTHS), **extra}  # fmt: skip


def keys(draws: list[Draw]) -> list[tuple[int, int]]:
    return [(d.entry.episode_index, d.frame_index) for d in draws]


def own_size(who: WorkerInfo, total: int) -> int:
    """How many of a reader's draws are its own frames (the rest are padding)."""
    return reader_sizes(total, who.world_size, who.num_workers)[who.slot]


def check_tails(head: list[tuple[int, int]], new: list[WorkerInfo], resume: Resume) -> dict:
    """The new readers' draws: with the head (its own frames), every frame exactly once besides at most
    one repeat per reader, worker w of every rank equally many, admissions well formed. Returns them."""
    tails = {who: draws_of(who, resume) for who in new}
    own = [k for who, draws in tails.items() for k in keys(draws[: own_size(who, resume.num_positions)])]
    frames = [(e, f) for e, n in enumerate(LENGTHS) for f in range(n)]
    assert sorted(head + own) == frames
    per_rank: Counter[int] = Counter()
    for who, draws in tails.items():
        assert len(draws) - own_size(who, resume.num_positions) in (0, 1)
        assert set(keys(draws[own_size(who, resume.num_positions) :])) <= set(own or frames)
        per_rank[who.rank] += len(draws)
        lasts = [d for d in draws if d.last]
        assert sorted(d.admission for d in lasts) == sorted({d.admission for d in draws})
        for last in lasts:
            assert all(d.admission != last.admission for d in draws[draws.index(last) + 1 :])
    assert len(set(per_rank.values())) == 1  # every new rank the same number of samples
    return tails


@pytest.mark.parametrize(
    ("old", "new"), [((1, 1), (2, 1)), ((2, 1), (1, 1)), ((2, 1), (3, 1)), ((2, 2), (3, 2)), ((3, 2), (1, 1))]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rest_of_an_epoch_once_across_new_readers(
    old: tuple[int, int], new: tuple[int, int], seed: int
) -> None:
    rng = random.Random(seed)
    readers = layout(*old)
    full = {who: draws_of(who) for who in readers}
    # each worker w consumed the same count on every rank (DDP lockstep)
    consumed = {w: rng.randrange(len(full[readers[w]]) + 1) for w in range(old[1])}
    head = [k for who in readers for k in keys(full[who][: min(consumed[who.worker], own_size(who, 83))])]
    states = [state(who, consumed[who.worker]) for who in readers]
    merged = elastic_state(states)
    assert merged == elastic_state(states[: old[1]])  # rank 0's states suffice under lockstep
    resume = Resume.from_json(merged["elastic"])
    tails = check_tails(head, layout(*new), resume)
    # a second elastic resume in the same epoch: back to the old layout, from halfway through the tails
    again = {who: len(draws) // 2 for who, draws in tails.items()}
    total = resume.num_positions
    head2 = head + [
        k for who, draws in tails.items() for k in keys(draws[: min(again[who], own_size(who, total))])
    ]
    states2 = [state(who, again[who], resumed=merged["elastic"]) for who in tails]
    check_tails(head2, readers, Resume.from_json(elastic_state(states2)["elastic"]))


def test_same_layout_elastic_restore_is_the_uninterrupted_rest_for_one_reader() -> None:
    who = WorkerInfo()
    full = keys(draws_of(who))
    for cut in (0, 1, 40, len(full) - 1, len(full)):
        resume = Resume.from_json(elastic_state([state(who, cut)])["elastic"])
        assert keys(draws_of(who, resume)) == full[cut:]


def test_positions_and_remaining() -> None:
    assert slice_intervals([(0, 5), (10, 20)], 3, 9) == [(3, 5), (10, 14)]
    assert slice_intervals([(0, 5), (10, 20)], 5, 5) == []
    # 2 readers over 10 positions own [0, 5) and [5, 10); they consumed 2 and 5 (all)
    assert remaining_positions([(0, 10)], 2, 1, {0: 2, 1: 5}) == [(2, 5)]
    assert remaining_positions([(0, 4), (6, 12)], 1, 2, {0: 1, 1: 0}) == [(1, 4), (6, 12)]


def test_states_of_different_runs_or_old_versions_are_refused() -> None:
    who = WorkerInfo()
    with pytest.raises(ValueError, match="differ in"):
        elastic_state([state(who, 1), state(WorkerInfo(worker=1, num_workers=2), 1)])
    legacy = state(who, 1)
    del legacy["partition"]
    with pytest.raises(ValueError, match="elastic_state: reader state: a state without a partition was"):
        elastic_state([legacy])
    with pytest.raises(ValueError, match="partition 'episodes' was written by a pre-release reader"):
        elastic_state([{**state(who, 1), "partition": "episodes"}])
    two = WorkerInfo(rank=1, world_size=2)
    with pytest.raises(ValueError, match="no state of worker 1"):
        elastic_state([state(WorkerInfo(num_workers=2), 1)])
    assert elastic_state([state(two, 3)]) == elastic_state(
        [state(two, 3), state(WorkerInfo(world_size=2), 3)]
    )


def test_skip_state_becomes_known_bad_positions_and_fills_and_carries_over() -> None:
    """A saved reader's ``skip_failed`` covers its remaining positions, its ``skip_fill`` becomes a
    sequence position; a second elastic restore keeps what is left of both."""
    readers = layout(2, 1)  # own positions [0, 42) and [42, 83)
    states = [
        state(readers[0], 10, skip_failed=[5], skip_fill=9, skip_owed=0),
        state(readers[1], 41, skip_failed=[7], skip_fill=40, skip_owed=0),  # done: nothing of it is left
    ]
    first = elastic_state(states)["elastic"]
    assert first["remaining"] == [[10, 42]]
    assert first["failed"] == [[10, 42, 5]]
    assert first["fills"] == [[10, 42, 9]]
    one = WorkerInfo()
    resumed = Resume.from_json(first)
    assert keys(draws_of(one, resumed))[:3] == keys(draws_of(readers[0]))[10:13]
    again = elastic_state([state(one, 5, resumed=first, skip_failed=[], skip_fill=3)])["elastic"]
    assert again["failed"] == [[15, 42, 5]]  # clipped to what is left
    assert again["fills"] == [[15, 42, 13]]  # its draw 3 is position 10 + 3
    fallback = elastic_state([state(one, 5, resumed=first, skip_failed=[], skip_fill=-1)])["elastic"]
    assert fallback["fills"] == [[15, 42, 9]]  # no good draw yet: the fill it had taken over
    plain = elastic_state([state(who, 10) for who in readers])["elastic"]
    assert set(plain) == {"world_size", "num_workers", "num_frames", "remaining"}  # without skipping
