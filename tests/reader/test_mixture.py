"""MixedDataset on real converted fixtures: exact counts, cycle/stop, ranks, resume, checks, meta.

The fixtures each have their own fps (tiny 30, multi 15, h264 10), which a mixture refuses, so most
mixtures here are of ``multi`` twice with different episode selections: each item's episode then says
which source it came from.
"""

from __future__ import annotations

import glob
import json
import random
from collections import Counter
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import webdataset as wds
from helpers import DATA
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

import lerobot_wds
from lerobot_wds import MixedDataset, ShardedLeRobotDataset
from lerobot_wds.reader.mixmeta import aggregate_stats
from lerobot_wds.reader.mixorder import apportion, pick_order

BATCH = 8
FIRST = list(range(12))  # multi's episodes 0-11 as one source, 12-23 as the other
SECOND = list(range(12, 24))


def source(url: str, episodes: list[int] | None = None, **options: Any) -> ShardedLeRobotDataset:
    return ShardedLeRobotDataset(url, episodes=episodes, seed=3, episode_pool_size=3, **options)


def pair(url: str, first: list[int] = FIRST, second: list[int] = SECOND, **options: Any) -> list[Any]:
    return [source(url, first, **options), source(url, second, **options)]


def mixture(url: str, weights: list[float], samples: int, **options: Any) -> MixedDataset:
    sources = options.pop("sources", None) or pair(url)
    return MixedDataset(sources, weights, seed=7, samples_per_epoch=samples, names=["a", "b"], **options)


def items(dataset: Any, num_workers: int = 0) -> list[dict[str, Any]]:
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    return [
        {k: item[k] for k in ("index", "episode_index", "dataset_index", "dataset_name")} for item in loader
    ]


def test_apportion_is_largest_remainder_and_exact() -> None:
    thirds = [Fraction(1, 3)] * 3
    assert apportion(thirds, 10) == [4, 3, 3]  # a tie goes to the lower index
    assert apportion([Fraction(7, 10), Fraction(3, 10)], 7) == [5, 2]  # 4.9, 2.1
    for total in range(50):
        weights = [Fraction(1, 7), Fraction(2, 7), Fraction(4, 7)]
        counts = apportion(weights, total)
        assert sum(counts) == total
        assert all(abs(c - w * total) < 1 for c, w in zip(counts, weights, strict=True))
    picks = pick_order([3, 5], seed=0, epoch=0, slot=0)
    assert picks.dtype == np.int8
    assert sorted(picks.tolist()) == [0, 0, 0, 1, 1, 1, 1, 1]
    assert (picks == pick_order([3, 5], seed=0, epoch=0, slot=0)).all()  # pure
    assert pick_order([300] * 200, seed=0, epoch=0, slot=0).dtype == np.int16


@pytest.mark.parametrize("num_workers", [0, 2])
def test_counts_per_source_are_exact_and_items_come_from_their_source(
    converted: dict[str, str], num_workers: int
) -> None:
    dataset = mixture(converted["multi"], [0.7, 0.3], samples=300)
    seen = items(dataset, num_workers)
    readers = max(num_workers, 1)
    assert len(seen) == 300
    per_reader = apportion(dataset.weights, 300 // readers)
    counts = Counter(int(item["dataset_index"]) for item in seen)
    assert [counts[0], counts[1]] == [c * readers for c in per_reader] == [210, 90]
    for item in seen:
        episodes = FIRST if item["dataset_name"] == "a" else SECOND
        assert int(item["episode_index"]) in episodes
        assert item["dataset_index"].shape == ()
        assert item["dataset_index"].dtype == torch.int64
        assert item["dataset_name"] == "ab"[int(item["dataset_index"])]
    assert len({int(i["index"]) for i in seen}) == 300  # no source lapped: every sample a distinct frame


def test_weight_by_episodes(converted: dict[str, str]) -> None:
    sources = pair(converted["multi"], list(range(6)), list(range(6, 24)))  # 6 and 18 episodes
    dataset = mixture(converted["multi"], [1.0, 1.0], samples=200, sources=sources, weight_by="episodes")
    counts = Counter(int(item["dataset_index"]) for item in items(dataset))
    assert [counts[0], counts[1]] == [50, 150]


def test_a_source_yields_its_own_stream(converted: dict[str, str]) -> None:
    """On its first lap, a source's items in the mixture are its own stream's, in order."""
    dataset = mixture(converted["multi"], [0.5, 0.5], samples=200)
    seen = items(dataset)
    for position, alone in enumerate(pair(converted["multi"])):
        mine = [int(i["index"]) for i in seen if int(i["dataset_index"]) == position]
        assert mine == [int(item["index"]) for item, _ in zip(alone, range(len(mine)), strict=False)]


def test_cycle_starts_a_fresh_lap_and_stop_ends_the_epoch(converted: dict[str, str]) -> None:
    small = source(converted["multi"], [0])
    frames = small.num_frames
    sources = [small, source(converted["multi"], SECOND)]
    cycled = items(mixture(converted["multi"], [0.5, 0.5], samples=4 * frames, sources=sources))
    mine = [int(i["index"]) for i in cycled if int(i["dataset_index"]) == 0]
    assert len(mine) == 2 * frames  # exact count: the small source ran twice
    laps = mine[:frames], mine[frames:]
    assert sorted(laps[0]) == sorted(laps[1]) == sorted(set(mine))  # each lap: every frame once
    assert laps[0] != laps[1]  # a fresh shuffle
    sources = [source(converted["multi"], [0]), source(converted["multi"], SECOND)]
    stopped = items(
        mixture(converted["multi"], [0.5, 0.5], samples=4 * frames, sources=sources, on_exhausted="stop")
    )
    assert sum(int(i["dataset_index"]) == 0 for i in stopped) == frames
    counts = apportion([Fraction(1, 2)] * 2, 4 * frames)
    picks = pick_order(counts, seed=7, epoch=0, slot=0)
    assert len(stopped) == int(np.flatnonzero(picks == 0)[frames])  # ends at the first pick with none left


def test_ranks_yield_equal_counts_and_different_samples(converted: dict[str, str]) -> None:
    per_rank = []
    for rank in range(2):
        sources = pair(converted["multi"], rank=rank, world_size=2)
        per_rank.append(items(mixture(converted["multi"], [0.6, 0.4], samples=400, sources=sources)))
    assert [len(seen) for seen in per_rank] == [200, 200]
    for seen in per_rank:
        assert Counter(int(i["dataset_index"]) for i in seen) == {0: 120, 1: 80}
    indices = [{int(i["index"]) for i in seen} for seen in per_rank]
    assert not indices[0] & indices[1]  # each source splits its episodes over the ranks
    for rank in range(2):  # stop: the earliest end over the ranks, so counts stay equal
        sources = [source(converted["multi"], [0, 1], rank=rank, world_size=2),
                   source(converted["multi"], SECOND, rank=rank, world_size=2)]  # fmt: skip
        stopped = items(mixture(converted["multi"], [0.5, 0.5], 800, sources=sources, on_exhausted="stop"))
        per_rank[rank] = stopped
    assert len(per_rank[0]) == len(per_rank[1]) < 400


def test_set_epoch_reshuffles_and_order_is_deterministic(converted: dict[str, str]) -> None:
    def order(epoch: int) -> list[tuple[int, int]]:
        dataset = mixture(converted["multi"], [0.5, 0.5], samples=120)
        dataset.set_epoch(epoch)
        return [(int(i["dataset_index"]), int(i["index"])) for i in items(dataset)]

    assert order(0) == order(0)
    assert order(0) != order(1)


def test_renames_and_dataset_names(converted: dict[str, str]) -> None:
    fps = 15
    windows = {"observation.images.wrist": [-1 / fps, 0.0]}
    sources = [source(converted["multi"], FIRST, delta_timestamps=windows),
               source(converted["multi"], SECOND, delta_timestamps=windows)]  # fmt: skip
    hand = {"observation.images.wrist": "observation.images.hand"}
    dataset = MixedDataset(sources, [1, 1], samples_per_epoch=20, rename=[hand, hand])
    item = next(iter(dataset))
    assert {"observation.images.hand", "observation.images.hand_is_pad"} <= set(item)
    assert not {"observation.images.wrist", "observation.images.wrist_is_pad"} & set(item)
    assert item["observation.images.hand"].shape == (2, 3, 96, 128)
    assert item["dataset_name"] == "multi"  # the URL's last component
    assert "observation.images.hand" in dataset.meta.features
    assert "observation.images.hand" in dataset.meta.stats
    with pytest.raises(ValueError, match=r"keys \['nope'\] are not its features"):
        MixedDataset(sources, [1, 1], rename=[{"nope": "x"}, {}])
    with pytest.raises(ValueError, match="which it already has"):
        MixedDataset(sources, [1, 1], rename=[{"action": "observation.state"}, {}])


def test_sources_that_disagree_are_refused_clearly(converted: dict[str, str]) -> None:
    a, b = pair(converted["multi"])
    message = (
        r"sources 'a' and 'b' disagree on 'x': shape \(3, 96, 128\) dtype video as float32 in 'a', "
        r"shape \(6,\) dtype float32 in 'b'"
    )
    with pytest.raises(ValueError, match=message):
        MixedDataset(
            [a, b], [1, 1], names=["a", "b"], rename=[{"observation.images.wrist": "x"}, {"action": "x"}]
        )
    windowed = source(converted["multi"], SECOND, delta_timestamps={"action": [0.0, 1 / 15]})
    with pytest.raises(ValueError, match=r"'action': shape \(6,\) .* shape \(2, 6\)"):
        MixedDataset([a, windowed], [1, 1])
    with pytest.raises(ValueError, match="disagree on fps: 30 and 15"):
        MixedDataset([source(converted["tiny"]), a], [1, 1])
    with pytest.raises(ValueError, match="built with batch_size=4; expected None: a mixture builds items"):
        MixedDataset([a, source(converted["multi"], SECOND, batch_size=4)], [1, 1])
    with pytest.raises(ValueError, match="expected a positive sum"):
        MixedDataset([a, b], [0, 0])
    with pytest.raises(ValueError, match="weights: got 1; expected one per dataset"):
        MixedDataset([a, b], [1])


WRIST = "observation.images.wrist"


def test_dropping_a_key_resolves_a_shape_mismatch(converted: dict[str, str]) -> None:
    """Source a has a 2-frame window on the wrist camera, b single frames: refused, unless a drops it."""
    windowed = source(converted["multi"], FIRST, delta_timestamps={WRIST: [-1 / 15, 0.0]})
    single = source(converted["multi"], SECOND)
    message = (
        rf"sources 'a' and 'b' disagree on '{WRIST}': shape \(2, 3, 96, 128\) dtype video as float32 in "
        r"'a', shape \(3, 96, 128\) dtype video as float32 in 'b'; .*or drop it"
    )
    with pytest.raises(ValueError, match=message):
        MixedDataset([windowed, single], [1, 1], names=["a", "b"])
    dataset = MixedDataset(
        [windowed, single], [1, 1], samples_per_epoch=40, names=["a", "b"], drop=[[WRIST], []]
    )
    seen = list(DataLoader(dataset, batch_size=None))
    keys = {name: {frozenset(i) for i in seen if i["dataset_name"] == name} for name in ("a", "b")}
    assert all(WRIST not in k and f"{WRIST}_is_pad" not in k for k in keys["a"])
    assert all(WRIST in k for k in keys["b"])
    assert next(item[WRIST].shape for item in seen if item["dataset_name"] == "b") == (3, 96, 128)
    assert WRIST in dataset.meta.features  # b's
    assert WRIST not in dataset.meta.stats  # aggregated over the sources that keep it: all of them
    undecoded = next(windowed._open_stream(windowed.worker_info(), skip_videos={WRIST}))
    assert WRIST not in undecoded  # a's wrist frames are not decoded at all
    first_b = next(i for i in seen if i["dataset_name"] == "b")
    with pytest.raises(ValueError, match=rf"collate: an item \(dataset_name 'b'\) has keys \['{WRIST}'\]"):
        lerobot_wds.collate([seen[[i["dataset_name"] for i in seen].index("a")], first_b])
    both = MixedDataset([windowed, single], [1, 1], samples_per_epoch=16, drop=[[WRIST], [WRIST]])
    batch = next(iter(DataLoader(both, batch_size=16, collate_fn=lerobot_wds.collate)))
    assert WRIST not in batch
    assert batch["observation.images.front"].shape == (16, 3, 96, 128)
    with pytest.raises(TypeError, match=r"drop: got \['action', 'action'\]; expected one list of keys per"):
        MixedDataset([windowed, single], [1, 1], drop=["action", "action"])
    with pytest.raises(ValueError, match=r"drop of source 'b': keys \['nope'\] are not its features"):
        MixedDataset([windowed, single], [1, 1], names=["a", "b"], drop=[[], ["nope"]])
    with pytest.raises(ValueError, match=r"drop of source 'a': keys \['action'\] are renamed too"):
        MixedDataset([windowed, single], [1, 1], names=["a", "b"], drop=[["action"], []],
                     rename=[{"action": "act"}, {}])  # fmt: skip


@pytest.mark.parametrize("num_workers", [0, 2])
def test_timing_stats_per_source_and_total(converted: dict[str, str], num_workers: int) -> None:
    """Source a (2 episodes) runs two laps; its counters cover both."""
    small = source(converted["multi"], [0, 1])
    frames = small.num_frames
    sources = [small, source(converted["multi"], SECOND)]
    dataset = mixture(converted["multi"], [0.5, 0.5], samples=4 * frames, sources=sources)
    assert len(items(dataset, num_workers)) == 4 * frames
    stats = dataset.timing_stats()
    a, b = stats["sources"]
    assert a == small.timing_stats()
    assert (a["items"], b["items"], stats["total"]["items"]) == (2 * frames, 2 * frames, 4 * frames)
    # 2 episodes, 2 laps. With 2 workers more: an episode at the boundary of the workers' frame ranges is
    # read by both, and a worker whose range is a frame short of its share starts a third lap.
    assert a["episodes"] == 4 if num_workers == 0 else 6 <= a["episodes"] <= 9
    assert a["decode_s"] > 0
    assert b["fetch_s"] > 0
    assert stats["total"]["decode_s"] == pytest.approx(a["decode_s"] + b["decode_s"])
    assert set(stats["total"]) == set(a)


def test_stats_aggregate_as_lerobot(converted: dict[str, str]) -> None:
    """Against a hand computation, and against the raw actions of tiny and multi together."""
    metas = [ShardedLeRobotDataset(converted[name]).meta for name in ("tiny", "multi")]
    stats = aggregate_stats([meta.stats for meta in metas])
    (n1, n2), (s1, s2) = (
        [int(m.stats["action"]["count"][0]) for m in metas],
        [m.stats["action"] for m in metas],
    )
    mean = (n1 * s1["mean"] + n2 * s2["mean"]) / (n1 + n2)
    second_moment = (n1 * (s1["std"] ** 2 + s1["mean"] ** 2) + n2 * (s2["std"] ** 2 + s2["mean"] ** 2)) / (
        n1 + n2
    )
    action = stats["action"]
    np.testing.assert_allclose(action["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(action["std"], np.sqrt(second_moment - mean**2), rtol=1e-9)
    np.testing.assert_array_equal(action["min"], np.minimum(s1["min"], s2["min"]))
    np.testing.assert_array_equal(action["max"], np.maximum(s1["max"], s2["max"]))
    assert action["count"].tolist() == [n1 + n2]
    np.testing.assert_allclose(action["q50"], (n1 * s1["q50"] + n2 * s2["q50"]) / (n1 + n2), rtol=1e-12)
    raw = np.concatenate([_actions(name) for name in ("tiny", "multi")]).astype(np.float64)
    np.testing.assert_allclose(action["mean"], raw.mean(0), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(action["std"], raw.std(0), rtol=1e-5, atol=1e-3)
    camera = stats["observation.images.front"]
    assert (camera["mean"].shape, camera["count"].shape) == ((3, 1, 1), (1,))
    dataset = mixture(converted["multi"], [0.5, 0.5], samples=10)
    assert dataset.meta.sources[0].stats is dataset.datasets[0].meta.stats  # per-source normalisation
    assert dataset.meta.stats["action"]["count"].tolist() == [2 * 1852]
    assert dataset.meta.fps == 15


def _actions(name: str) -> np.ndarray:
    table = pq.read_table(sorted(glob.glob(str(DATA / name / "data/*/*.parquet"))))
    return np.stack(table["action"].to_numpy(zero_copy_only=False))


# ----------------------------------------------------------------------------- resume


def make_resumable(url: str, **options: Any) -> MixedDataset:
    """A source of 2 episodes (~150 frames) asked for 192 samples: it laps within the epoch."""
    sources = pair(url, first=[0, 1])
    return MixedDataset(sources, [0.6, 0.4], seed=1, samples_per_epoch=320, **options)


def batches(loader: Any) -> list[list[tuple[int, int]]]:
    return [list(zip(b["dataset_index"].tolist(), b["index"].tolist(), strict=True)) for b in loader]


def loader(dataset: MixedDataset, num_workers: int) -> StatefulDataLoader:
    return StatefulDataLoader(
        dataset, batch_size=BATCH, num_workers=num_workers, collate_fn=lerobot_wds.collate
    )


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_gives_the_uninterrupted_stream(converted: dict[str, str], num_workers: int) -> None:
    url = converted["multi"]
    full = batches(loader(make_resumable(url), num_workers))
    assert len(full) == 40
    rng = random.Random(0)
    for cut in sorted({1, 19, len(full) - 1, len(full), rng.randrange(2, 19), rng.randrange(20, 39)}):
        interrupted = loader(make_resumable(url), num_workers)
        iterator = iter(interrupted)
        head = [list(zip(b["dataset_index"].tolist(), b["index"].tolist(), strict=True))
                for b in (next(iterator) for _ in range(cut))]  # fmt: skip
        state = json.loads(json.dumps(interrupted.state_dict()))
        del iterator
        restored = loader(make_resumable(url), num_workers)
        restored.load_state_dict(state)
        assert head + batches(restored) == full, f"cut at batch {cut} of {len(full)}"


def test_state_holds_laps_and_draws_and_refuses_other_options(converted: dict[str, str]) -> None:
    dataset = make_resumable(converted["multi"])
    iterator = iter(dataset)
    head = [next(iterator) for _ in range(300)]
    state = dataset.state_dict()
    assert state["picks"] == 300
    assert state["sources"][0]["lap"] == 1  # the small source is on its second lap
    first = sum(int(i["dataset_index"]) == 0 for i in head)
    assert state["sources"][0]["draws"] == first - dataset.datasets[0].num_frames
    assert len(json.dumps(state)) < 500
    with pytest.raises(ValueError, match="other sources or other mixture options"):
        MixedDataset(
            pair(converted["multi"], first=[0, 1]), [0.5, 0.5], seed=1, samples_per_epoch=320
        ).load_state_dict(state)
    stopped = make_resumable(converted["multi"], on_exhausted="stop")
    with pytest.raises(ValueError, match="other sources or other mixture options"):
        stopped.load_state_dict(state)


def test_webloader_batches_a_mixture(converted: dict[str, str]) -> None:
    dataset = mixture(converted["multi"], [0.5, 0.5], samples=64)
    loader = wds.WebLoader(dataset, batch_size=16, num_workers=2, collate_fn=lerobot_wds.collate)
    batches = list(loader)
    assert [len(b["index"]) for b in batches] == [16] * 4
    assert [name for b in batches for name in b["dataset_name"]].count("a") == 32
