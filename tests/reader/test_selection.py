"""Episode selection on ShardedLeRobotDataset: by task, by a predicate over episode metadata, and the
deterministic train/val split; on converted fixtures (multi: 24 episodes, task_index = episode % 4)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import fixture_dir
from torch.utils.data import DataLoader

from lerobot_wds import ConvertConfig, EpisodeInfo, MixedDataset, ReaderConfig, ShardedLeRobotDataset, convert
from lerobot_wds.reader.selection import val_fraction_of

DRAWER = "open the top drawer"  # multi's task 2: episodes 2, 6, 10, ...
CUPS = "stack the green cup on the blue cup"  # task 3


def chosen(url: str, **options: Any) -> list[int]:
    return [e.episode_index for e in ShardedLeRobotDataset(url, **options).entries]


def long_episode(info: EpisodeInfo) -> bool:
    return info.num_frames >= 100


def test_tasks_select_by_exact_string_or_predicate(converted: dict[str, str]) -> None:
    url = converted["multi"]
    assert chosen(url, tasks=DRAWER) == list(range(2, 24, 4))
    assert chosen(url, tasks=[CUPS, DRAWER]) == sorted([*range(2, 24, 4), *range(3, 24, 4)])
    assert chosen(url, tasks=lambda task: "cup" in task) == list(range(3, 24, 4))
    assert chosen(url, tasks=DRAWER, episodes=[0, 1, 2, 6, 7]) == [2, 6]  # options intersect
    with pytest.raises(ValueError, match=r"tasks \['open the drawer'\] are not among the dataset's 4 tasks"):
        ShardedLeRobotDataset(url, tasks=["open the drawer"])


def test_episode_filter_sees_the_manifest_metadata(converted: dict[str, str]) -> None:
    url = converted["multi"]
    lengths = {e.episode_index: e.num_frames for e in ShardedLeRobotDataset(url).entries}
    assert chosen(url, episode_filter=long_episode) == [3, 6, 7, 10, 13, 20, 22]  # 100+ frames
    assert all(lengths[i] >= 100 for i in chosen(url, episode_filter=long_episode))
    seen: list[EpisodeInfo] = []
    chosen(url, episodes=[5], episode_filter=lambda info: seen.append(info) or True)
    assert seen == [
        EpisodeInfo(episode_index=5, num_frames=43, tasks=("push the T-shaped block onto the target",),
                    task_indices=(1,), dataset_from_index=sum(lengths[i] for i in range(5)))
    ]  # fmt: skip
    with pytest.raises(ZeroDivisionError) as raised:
        ShardedLeRobotDataset(url, episode_filter=lambda info: 1 / 0)
    assert any("while calling episode_filter on episode 0" in note for note in raised.value.__notes__)
    with pytest.raises(ValueError, match=r"selection leaves no episodes \(of 24: .*expected at least one"):
        ShardedLeRobotDataset(url, tasks=DRAWER, episode_filter=lambda info: info.episode_index % 4 != 2)


def test_split_hash_is_pinned() -> None:
    """The definition, not an implementation detail: changing it moves episodes for every user."""
    assert val_fraction_of("multi", 0) == 0.018466148359293753
    assert val_fraction_of("lerobot/pusht", 7) == 0.5093131381047875


def test_val_episodes_of_the_fixtures_are_pinned(converted: dict[str, str]) -> None:
    """Which episodes land in val: a hash of (dataset name, episode_index), the same on every machine
    (the name of a local source is its folder's, not its path)."""
    assert chosen(converted["multi"], split="val", val_fraction=0.25) == [0, 1, 5, 9, 18, 20, 21, 22]
    assert chosen(converted["h264"], split="val", val_fraction=0.25) == [0, 7, 11, 14, 15, 20, 21, 23]
    assert chosen(converted["tiny"], split="val", val_fraction=0.25) == [5]


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_train_and_val_are_disjoint_complete_and_nested(converted: dict[str, str], fraction: float) -> None:
    url = converted["multi"]
    train = chosen(url, split="train", val_fraction=fraction)
    val = chosen(url, split="val", val_fraction=fraction)
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(24))
    assert set(chosen(url, split="val", val_fraction=0.05)) <= set(val)  # a larger fraction only adds
    # the split does not depend on what else is selected: an episode stays on its side
    subset = chosen(url, split="val", val_fraction=fraction, episodes=range(0, 24, 2))
    assert subset == [i for i in val if i % 2 == 0]


def test_explicit_val_episodes(converted: dict[str, str]) -> None:
    url = converted["multi"]
    assert chosen(url, split="val", val_episodes=[3, 1]) == [1, 3]
    assert chosen(url, split="train", val_episodes=[3, 1]) == [0, 2, *range(4, 24)]
    with pytest.raises(ValueError, match=r"val_episodes \[99\] are not in the manifest"):
        ShardedLeRobotDataset(url, split="val", val_episodes=[1, 99])


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"val_fraction": 0.1}, ValueError, r"val_fraction: given without split; expected split="),
        ({"split": "val"}, ValueError, r"got neither val_fraction nor val_episodes; expected exactly one"),
        ({"split": "val", "val_fraction": 0.1, "val_episodes": [1]}, ValueError, r"expected exactly one"),
        ({"split": "test", "val_fraction": 0.1}, ValueError, r"split: got 'test'; expected one of 'train'"),
        ({"split": "val", "val_fraction": 1.0}, ValueError, r"val_fraction: got 1.0; expected 0 < val_"),
        ({"tasks": [DRAWER, 3]}, TypeError, r"tasks: got .*; expected a str, a list of str or a predicate"),
        ({"episode_filter": "long"}, TypeError, r"episode_filter: got 'long'; expected a callable"),
    ],
)
def test_bad_selection_options_are_refused(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        ReaderConfig(**options)


def test_selection_enters_the_fingerprint(converted: dict[str, str]) -> None:
    url = converted["multi"]
    val = ShardedLeRobotDataset(url, split="val", val_fraction=0.25)
    state = val.state_dict()
    with pytest.raises(ValueError, match="saved for another dataset or other order options"):
        ShardedLeRobotDataset(url, split="train", val_fraction=0.25).load_state_dict(state)
    with pytest.raises(ValueError, match="saved for another dataset or other order options"):
        ShardedLeRobotDataset(url, tasks=DRAWER).load_state_dict(state)
    same = ShardedLeRobotDataset(url, episodes=[0, 1, 5, 9, 18, 20, 21, 22])  # the same episodes
    same.load_state_dict(state)


def test_lambdas_reach_spawned_workers_as_their_selection(converted: dict[str, str]) -> None:
    """Predicates run once in __init__; a pickled dataset (what a spawned worker gets) carries the
    selected episodes, not the predicate, so a lambda works with any start method."""
    dataset = ShardedLeRobotDataset(converted["multi"], tasks=lambda task: task == CUPS, episodes=[2, 19])
    copy = pickle.loads(pickle.dumps(dataset))
    assert [e.episode_index for e in copy.entries] == [19]
    assert copy.fingerprint() == dataset.fingerprint()
    assert dataset.config.tasks is not None  # the original keeps its options
    loader = DataLoader(dataset, batch_size=None, num_workers=1, multiprocessing_context="spawn")
    episodes = {int(item["episode_index"]) for item in loader}
    assert episodes == {19}


def test_each_source_of_a_mixture_has_its_own_split(converted: dict[str, str]) -> None:
    url = converted["multi"]
    sources = [
        ShardedLeRobotDataset(url, split="val", val_fraction=0.25, episode_pool_size=2),
        ShardedLeRobotDataset(url, split="val", val_episodes=[2, 3], episode_pool_size=2),
    ]
    mixture = MixedDataset(sources, [0.5, 0.5], samples_per_epoch=60)
    seen = {(int(i["dataset_index"]), int(i["episode_index"])) for i in DataLoader(mixture, batch_size=None)}
    assert {e for source, e in seen if source == 0} <= {0, 1, 5, 9, 18, 20, 21, 22}
    assert {e for source, e in seen if source == 1} <= {2, 3}
    assert {source for source, _ in seen} == {0, 1}


def test_a_sources_own_episode_columns_reach_the_filter(tmp_path: Path) -> None:
    """A success flag (and an operator) added to tiny's meta/episodes parquet: the converter keeps the
    scalar columns in the manifest's episodes.fields, and episode_filter selects on them."""
    source = tmp_path / "tiny"
    shutil.copytree(fixture_dir("tiny"), source)
    (path,) = sorted(source.glob("meta/episodes/*/*.parquet"))
    table = pq.read_table(path)
    num_episodes = table.num_rows
    success = [index % 3 != 1 for index in table.column("episode_index").to_pylist()]
    table = table.append_column("success", pa.array(success))
    table = table.append_column("operator", pa.array(["ana", None, "bo", "ana", "bo", None][:num_episodes]))
    table = table.append_column("notes", pa.array([["nested"]] * num_episodes))  # not a scalar: not kept
    pq.write_table(table, path)
    out = str(tmp_path / "converted")
    convert(str(source), out, ConvertConfig())
    columns = json.loads((Path(out) / "manifest.json").read_bytes())["episodes"]
    assert columns["fields"] == {"operator": ["ana", None, "bo", "ana", "bo", None], "success": success}
    assert chosen(out, episode_filter=succeeded) == [0, 2, 3, 5]
    assert chosen(out, episode_filter=lambda e: e.fields.get("operator") == "bo") == [2, 4]
    assert chosen(out, episodes=[1]) == [1]  # an episode without an operator: the key is absent
    assert ShardedLeRobotDataset(out, episodes=[1]).entries[0].fields == (("success", False),)


def succeeded(info: EpisodeInfo) -> bool:
    return bool(info.fields.get("success"))
