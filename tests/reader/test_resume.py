"""Exact resume: after a restore at any point, the rest of the stream equals the uninterrupted run."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest
from torchdata.stateful_dataloader import StatefulDataLoader

from lerobot_wds import ShardedLeRobotDataset
from lerobot_wds.reader import elastic_state
from lerobot_wds.reader.pipeline import reader_schedule

BATCH = 8


def make(url: str, rank: int = 0, world_size: int = 1, **options: Any) -> ShardedLeRobotDataset:
    fps = ShardedLeRobotDataset(url).fps
    options = {"seed": 5, "episode_pool_size": 3, **options}
    return ShardedLeRobotDataset(
        url, delta_timestamps={"action": [0.0, 1 / fps]}, rank=rank, world_size=world_size, **options
    )


def batches(loader: Any) -> list[list[int]]:
    return [batch["index"].tolist() for batch in loader]


def cut_points(total: int) -> list[int]:
    """Start, first batch, a quarter, half, last batch, end, and random ones (seeded)."""
    rng = random.Random(0)
    return sorted(
        {0, 1, total // 4, total // 2, total - 1, total, *(rng.randrange(total + 1) for _ in range(2))}
    )


def check_resumable(url: str, num_workers: int, rank: int, world_size: int, **options: Any) -> None:
    full = batches(
        StatefulDataLoader(make(url, rank, world_size, **options), batch_size=BATCH, num_workers=num_workers)
    )
    for cut in cut_points(len(full)):
        loader = StatefulDataLoader(
            make(url, rank, world_size, **options), batch_size=BATCH, num_workers=num_workers
        )
        iterator = iter(loader)
        head = [next(iterator)["index"].tolist() for _ in range(cut)]
        state = loader.state_dict()
        del iterator
        restored = StatefulDataLoader(
            make(url, rank, world_size, **options), batch_size=BATCH, num_workers=num_workers
        )
        restored.load_state_dict(state)
        assert head + batches(restored) == full, f"cut at batch {cut} of {len(full)}"


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("world_size", [1, 2])
def test_resume_contract(converted: dict[str, str], num_workers: int, world_size: int) -> None:
    for rank in range(world_size):
        check_resumable(converted["tiny"], num_workers, rank, world_size)


def check_elastic(url: str, old: tuple[int, int], new: tuple[int, int], cuts: list[int]) -> None:
    """Save a run of ``old`` = (ranks, workers) after ``cut`` batches per rank, resume it as ``new``:
    the head and every new rank's tail hold every frame exactly once, besides at most one repeat per rank
    of each run (DDP padding), and every new rank yields as many samples."""
    (world_size, num_workers), (new_world_size, new_num_workers) = old, new
    num_frames = make(url).num_frames
    for cut in cuts:
        head: list[int] = []
        states = []
        for rank in range(world_size):
            loader = StatefulDataLoader(
                make(url, rank, world_size), batch_size=BATCH, num_workers=num_workers
            )
            iterator = iter(loader)
            head += [i for batch in itertools.islice(iterator, cut) for i in batch["index"].tolist()]
            states.append(loader.state_dict())
            del iterator
        resumed = elastic_state(json.loads(json.dumps(states)))
        tails = []
        for rank in range(new_world_size):
            dataset = make(url, rank, new_world_size)
            dataset.load_state_dict(resumed)
            loader = StatefulDataLoader(dataset, batch_size=BATCH, num_workers=new_num_workers)
            tails.append([i for batch in batches(loader) for i in batch])
        everything = head + [i for tail in tails for i in tail]
        where = f"{old} -> {new}, cut at batch {cut}"
        assert set(everything) == set(range(num_frames)), where
        assert len(everything) - num_frames <= (world_size - 1) + (new_world_size - 1), where
        assert len({len(tail) for tail in tails}) == 1, where


@pytest.mark.parametrize(
    ("old", "new"),
    [((1, 0), (2, 0)), ((2, 0), (1, 0)), ((2, 0), (3, 0)), ((1, 2), (2, 2)), ((2, 2), (1, 2)),
     ((2, 2), (3, 2)), ((2, 2), (1, 0)), ((1, 0), (2, 2))],
)  # fmt: skip
def test_elastic_resume_covers_the_rest_once(
    converted: dict[str, str], old: tuple[int, int], new: tuple[int, int]
) -> None:
    per_rank = make(converted["tiny"]).num_frames // old[0] // BATCH
    check_elastic(converted["tiny"], old, new, [0, per_rank // 3, per_rank - 1])


def test_resume_forward_order_across_shards(converted: dict[str, str]) -> None:
    check_resumable(converted["h264"], 2, 0, 1, frame_order="forward")


def test_dataset_state_is_small_json(converted: dict[str, str]) -> None:
    dataset = make(converted["multi"])
    iterator = iter(dataset)
    seen = [int(next(iterator)["index"]) for _ in range(100)]
    state = dataset.state_dict()
    assert len(json.dumps(state)) < 400
    assert state["draws"] == 100
    rest = [int(item["index"]) for item in iterator]
    again = make(converted["multi"])
    again.load_state_dict(json.loads(json.dumps(state)))
    assert seen + [int(item["index"]) for item in again] == seen + rest


def test_elastic_state_of_the_same_layout_is_the_rest_of_the_stream(converted: dict[str, str]) -> None:
    dataset = make(converted["tiny"])
    full = [int(item["index"]) for item in dataset]
    iterator = iter(dataset)
    head = [int(next(iterator)["index"]) for _ in range(50)]
    resumed = make(converted["tiny"])
    resumed.load_state_dict(elastic_state([dataset.state_dict()]))
    assert head + [int(item["index"]) for item in resumed] == full


def test_restore_into_other_options_or_layout_is_refused(converted: dict[str, str]) -> None:
    dataset = make(converted["tiny"])
    next(iter(dataset))
    state = dataset.state_dict()
    with pytest.raises(ValueError, match="another dataset or other order options"):
        make(converted["tiny"], episode_pool_size=4).load_state_dict(state)
    with pytest.raises(ValueError, match="another dataset or other order options"):
        make(converted["multi"]).load_state_dict(state)
    other_world = make(converted["tiny"], rank=0, world_size=2)
    other_world.load_state_dict(state)
    with pytest.raises(ValueError, match=r"another number of ranks or workers, load .*elastic_state"):
        iter(other_world)


def test_restored_epoch_then_next_epoch(converted: dict[str, str]) -> None:
    dataset = make(converted["tiny"])
    dataset.set_epoch(3)
    iterator = iter(dataset)
    head = [int(next(iterator)["index"]) for _ in range(50)]
    state = dataset.state_dict()
    restored = make(converted["tiny"])
    restored.load_state_dict(state)
    assert restored.epoch == 3
    rest = [int(item["index"]) for item in restored]
    assert sorted(head + rest) == list(range(224))
    restored.set_epoch(4)
    assert sorted(int(item["index"]) for item in restored) == list(range(224))  # a full new epoch


def test_state_saved_before_the_frame_split_restores_by_the_whole_episode_split(
    converted: dict[str, str],
) -> None:
    """States of session 5 and older carry no "partition": the rest of their epoch follows the old plan."""
    dataset = make(converted["tiny"], rank=1, world_size=2)
    who = dataset.worker_info()
    old = reader_schedule(dataset.entries, dataset.config, who, 0, partition="episodes")
    expected = [d.entry.dataset_from_index + d.frame_index for d in old]
    state = {k: v for k, v in dataset.state_dict().items() if k not in ("partition", "num_frames")}
    dataset.load_state_dict({**state, "draws": 30})
    rest = [int(item["index"]) for item in dataset]
    assert rest == expected[30:]
    assert rest != [int(item["index"]) for item in make(converted["tiny"], rank=1, world_size=2)][30:]


def test_a_state_saved_in_an_elastically_resumed_epoch_restores_exactly(converted: dict[str, str]) -> None:
    url = converted["tiny"]
    saved = []
    for rank in range(2):  # a 2-rank run saved after 30 items per rank
        dataset = make(url, rank, 2)
        iterator = iter(dataset)
        for _ in range(30):
            next(iterator)
        saved.append(dataset.state_dict())
    resumed = elastic_state(saved)
    first = make(url)
    first.load_state_dict(resumed)
    iterator = iter(first)
    head = [int(next(iterator)["index"]) for _ in range(40)]
    state = first.state_dict()
    assert state["resumed"] == resumed["elastic"]
    rest = [int(item["index"]) for item in iterator]
    again = make(url)
    again.load_state_dict(json.loads(json.dumps(state)))
    assert [int(item["index"]) for item in again] == rest
    assert len(head + rest) == 224 - 60


def test_elastic_state_refuses_a_loader_state_taken_between_snapshots(converted: dict[str, str]) -> None:
    loader = StatefulDataLoader(
        make(converted["tiny"]), batch_size=BATCH, num_workers=2, snapshot_every_n_steps=4
    )
    iterator = iter(loader)
    next(iterator)
    with pytest.raises(ValueError, match="snapshot_every_n_steps=1"):
        elastic_state([loader.state_dict()])
    del iterator


def test_a_state_with_an_unknown_partition_is_refused(converted: dict[str, str]) -> None:
    dataset = make(converted["tiny"])
    dataset.load_state_dict({**dataset.state_dict(), "partition": "shards"})
    with pytest.raises(ValueError, match=r"reader state: partition: got 'shards'; expected one of 'frames'"):
        iter(dataset)
