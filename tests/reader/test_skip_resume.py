"""Exact resume with ``on_error="skip"`` where a plain restore is not enough: a mixture of skipping
sources (each source's skip state in the mixture's state) and an elastic restore (episodes found bad
before the save stay skipped for the rest of the saved readers' positions)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_skip import flip_episodes
from torchdata.stateful_dataloader import StatefulDataLoader

import lerobot_wds
from lerobot_wds import MixedDataset, ShardedLeRobotDataset, ShardFormatError
from lerobot_wds.reader import elastic_state

BATCH = 4


@pytest.fixture(scope="module")
def flipped(converted: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """`multi` with episodes 3, 15 and 20 failing to read (a flipped byte each)."""
    return flip_episodes(converted["multi"], tmp_path_factory.mktemp("flipped") / "multi", [3, 15, 20])


def skipping_mixture(root: str) -> MixedDataset:
    """Source 0 (episodes 0-5, 3 bad) laps within the epoch; source 1 (12-23, 15 and 20 bad) does not."""
    a = ShardedLeRobotDataset(root, episodes=list(range(6)), seed=3, episode_pool_size=2, on_error="skip")
    b = ShardedLeRobotDataset(
        root, episodes=list(range(12, 24)), seed=3, episode_pool_size=3, on_error="skip"
    )
    return MixedDataset([a, b], [0.6, 0.4], seed=1, samples_per_epoch=400)


def batches(loader: Any) -> list[list[tuple[int, int]]]:
    return [list(zip(b["dataset_index"].tolist(), b["index"].tolist(), strict=True)) for b in loader]


def mixture_loader(root: str, num_workers: int) -> StatefulDataLoader:
    return StatefulDataLoader(
        skipping_mixture(root), batch_size=BATCH, num_workers=num_workers, collate_fn=lerobot_wds.collate
    )


def skip_states(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The mixture states in a loader state (one per worker)."""
    if "_snapshot" in state:
        workers = state["_snapshot"]["_worker_snapshots"].values()
        return [w["dataset_state"] for w in workers if w.get("dataset_state") is not None]
    return [state["dataset_state"]]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_mixture_of_skipping_sources_resumes_exactly(flipped: str, num_workers: int) -> None:
    full = batches(mixture_loader(flipped, num_workers))
    assert len(full) == 100
    mid_skip = 0  # cuts with a source owing repeats or in the middle of a bad episode
    for cut in range(1, len(full), 3):
        interrupted = mixture_loader(flipped, num_workers)
        iterator = iter(interrupted)
        head = [list(zip(b["dataset_index"].tolist(), b["index"].tolist(), strict=True))
                for b in (next(iterator) for _ in range(cut))]  # fmt: skip
        state = json.loads(json.dumps(interrupted.state_dict()))
        del iterator
        sources = [s for reader in skip_states(state) for s in reader["sources"]]
        mid_skip += any(s.get("skip_owed") or s.get("skip_failed") for s in sources)
        restored = mixture_loader(flipped, num_workers)
        restored.load_state_dict(state)
        assert head + batches(restored) == full, f"cut at batch {cut} of {len(full)}: {state}"
    assert mid_skip >= 2


def test_a_mixture_state_without_skip_keys_still_loads(flipped: str) -> None:
    """A state saved before sources carried their skip state (``lap`` and ``draws`` only) resumes at
    the same picks and draws, with a fresh skip state: the rest has the uninterrupted run's length."""
    full = [(int(i["dataset_index"]), int(i["index"])) for i in skipping_mixture(flipped)]
    dataset = skipping_mixture(flipped)
    iterator = iter(dataset)
    head = [(int(i["dataset_index"]), int(i["index"])) for i in (next(iterator) for _ in range(150))]
    state = dataset.state_dict()
    assert any(set(source) > {"lap", "draws"} for source in state["sources"])
    old = {**state, "sources": [{"lap": s["lap"], "draws": s["draws"]} for s in state["sources"]]}
    restored = skipping_mixture(flipped)
    restored.load_state_dict(old)
    rest = [(int(i["dataset_index"]), int(i["index"])) for i in restored]
    assert len(head) + len(rest) == len(full)
    assert [source for source, _ in head + rest] == [source for source, _ in full]  # the same picks


# ----------------------------------------------------------------------------- elastic

TINY_EP2 = range(100, 140)  # tiny's episode 2 (index 100-139): its frames from 20 on do not decode


def values(dataset: ShardedLeRobotDataset) -> list[list[int]]:
    """The ``index`` of each item, or of each batch's items."""
    return [value["index"].reshape(-1).tolist() for value in dataset]


def run(make: Callable[[int, int], ShardedLeRobotDataset], rank: int, world_size: int) -> tuple[list, list]:
    """Reader ``rank``'s values (the ``index`` of their items) and its state after each of them."""
    dataset = make(rank, world_size)
    indices, states = [], []
    for value in dataset:
        indices.append(value["index"].reshape(-1).tolist())
        states.append(json.loads(json.dumps(dataset.state_dict())))
    return indices, states


def flat(values: list[list[int]]) -> list[int]:
    return [i for value in values for i in value]


@pytest.mark.usefixtures("half_bad_episode")
@pytest.mark.parametrize("batch_size", [None, 8])
@pytest.mark.parametrize(("old", "new"), [(2, 1), (1, 2)])
def test_elastic_restore_keeps_the_bad_episodes_found(
    converted: dict[str, str], tmp_path: Path, old: int, new: int, batch_size: int | None
) -> None:
    """Every frame the uninterrupted run hands out comes exactly once (head or tail; the rest are repeats
    of them), none that it skips: also frames of episode 2 below 20 that the saved reader drew after its
    first failing one, and never episode 4 (fails to read), which the new readers do not read again."""
    root = flip_episodes(converted["tiny"], tmp_path / "tiny", [4])

    def make(rank: int, world_size: int) -> ShardedLeRobotDataset:
        return ShardedLeRobotDataset(
            root, on_error="skip", seed=3, episode_pool_size=2, rank=rank, world_size=world_size,
            batch_size=batch_size,
        )  # fmt: skip

    full = [run(make, rank, old) for rank in range(old)]
    expected = {i for indices, _ in full for i in flat(indices)}
    assert not {*range(120, 140), *range(171, 203)} & expected  # episode 2 from frame 20 on, episode 4
    # cuts (the same on every rank: DDP lockstep) where a reader is in the middle of episode 2, found bad
    mid = [k for k in range(len(full[0][0])) if any(2 in states[k]["skip_failed"] for _, states in full)]
    assert len(mid) >= 2
    cuts = sorted({mid[0], mid[len(mid) // 2], mid[-1]} | ({0, len(full[0][0]) // 3} if new == 1 else set()))
    for cut in cuts:
        states = [states[cut] for _, states in full]
        head = [i for indices, _ in full for i in flat(indices[: cut + 1])]
        merged = elastic_state(states)
        assert merged["elastic"]["failed"]  # episode 2's draws left to a reader that had found it bad
        assert merged["elastic"]["fills"]  # the saved readers' last good draws
        tails = []
        for rank in range(new):
            dataset = make(rank, new)
            dataset.load_state_dict(merged)
            tails.append(values(dataset))
        assert len({len(flat(t)) for t in tails}) == 1  # every new rank the same number of items
        got = head + [i for tail in tails for i in flat(tail)]
        assert set(got) == expected, f"cut {cut}: extra {set(got) - expected}, missing {expected - set(got)}"
        check_restores_within(lambda: make(new - 1, new), merged, tails[-1])
        # the positions not consumed, each once, plus at most one repeat per new reader (repeats still
        # owed for bad draws before a reader's first good item are not carried)
        left = sum(len(flat(indices)) for indices, _ in full) - sum(state["draws"] for state in states)
        assert 0 <= sum(len(flat(t)) for t in tails) - left < new


def check_restores_within(
    make: Callable[[], ShardedLeRobotDataset], elastic: dict, tail: list[list[int]]
) -> None:
    """A state saved in the elastically resumed epoch restores (same layout) to the rest of ``tail``."""
    for cut in sorted({1, len(tail) // 3, len(tail) // 2}):
        dataset = make()
        dataset.load_state_dict(elastic)
        iterator = iter(dataset)
        head = [next(iterator)["index"].reshape(-1).tolist() for _ in range(cut)]
        state = json.loads(json.dumps(dataset.state_dict()))
        restored = make()
        restored.load_state_dict(state)
        assert head + values(restored) == tail, f"cut {cut}: {state}"


def test_a_restore_in_a_run_of_bad_episodes_raises_where_the_uninterrupted_run_does(
    converted: dict[str, str], tmp_path: Path
) -> None:
    """max_consecutive_errors=1 with two bad episodes in a row: a state saved between them still counts
    the first one (``skip_consecutive``), so the restored run raises at the same item."""
    order = list(dict.fromkeys(int(i["episode_index"]) for i in ShardedLeRobotDataset(
        converted["tiny"], seed=3, episode_pool_size=1)))  # fmt: skip
    root = flip_episodes(converted["tiny"], tmp_path / "tiny", order[1:3])

    def make() -> ShardedLeRobotDataset:
        return ShardedLeRobotDataset(
            root, on_error="skip", max_consecutive_errors=1, seed=3, episode_pool_size=1
        )

    def until_raise(dataset: ShardedLeRobotDataset) -> list[dict[str, Any]]:
        """The state after each item before the raise."""
        states: list[dict[str, Any]] = []
        with pytest.raises(ShardFormatError) as raised:
            _states_of(dataset, states)
        assert "2 episodes failed in a row" in "".join(raised.value.__notes__)
        return states

    states = until_raise(make())
    raised_at = len(states)
    cuts = [k for k, state in enumerate(states) if state["skip_consecutive"] == 1]
    assert cuts
    for cut in cuts[:: max(len(cuts) // 4, 1)]:
        restored = make()
        restored.load_state_dict(states[cut])
        assert cut + 1 + len(until_raise(restored)) == raised_at, f"cut {cut}"


def _states_of(dataset: ShardedLeRobotDataset, states: list[dict[str, Any]]) -> None:
    for _ in dataset:
        states.append(json.loads(json.dumps(dataset.state_dict())))


@pytest.mark.usefixtures("half_bad_episode")
def test_elastic_restore_of_a_loader_with_workers_keeps_the_bad_episodes_found(
    converted: dict[str, str], tmp_path: Path
) -> None:
    """Saved by a StatefulDataLoader with 2 workers (each worker's skip state in its snapshot), loaded
    by 2 ranks without workers: the frames of the epoch are the uninterrupted run's."""
    root = flip_episodes(converted["tiny"], tmp_path / "tiny", [4])

    def make(rank: int = 0, world_size: int = 1) -> ShardedLeRobotDataset:
        return ShardedLeRobotDataset(
            root, on_error="skip", seed=3, episode_pool_size=2, rank=rank, world_size=world_size
        )

    def loader() -> StatefulDataLoader:
        return StatefulDataLoader(make(), batch_size=BATCH, num_workers=2)

    full, states = [], []
    for batch in (run_loader := loader()):
        full.append(batch["index"].tolist())
        states.append(json.loads(json.dumps(run_loader.state_dict())))
    expected = set(flat(full))
    mid = [k for k, state in enumerate(states) if any(2 in s["skip_failed"] for s in skip_states(state))]
    assert mid
    for cut in sorted({mid[0], mid[-1]}):
        merged = elastic_state([states[cut]])
        assert merged["elastic"]["failed"]
        tails = []
        for rank in range(2):
            dataset = make(rank, 2)
            dataset.load_state_dict(merged)
            tails.append(values(dataset))
        assert len({len(flat(t)) for t in tails}) == 1
        got = flat(full[: cut + 1]) + [i for tail in tails for i in flat(tail)]
        assert set(got) == expected, f"cut {cut}: extra {set(got) - expected}, missing {expected - set(got)}"
