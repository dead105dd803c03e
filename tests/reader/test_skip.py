"""on_error="skip": a bad episode is counted, logged once and replaced by repeats; counts stay equal."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import corruptions as bad
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from lerobot_wds import ShardedLeRobotDataset, ShardFormatError, read_manifest
from lerobot_wds.reader import frames
from lerobot_wds.reader.order import WorkerInfo
from lerobot_wds.reader.pipeline import reader_plan

FRAMES = {0: 54, 1: 46, 2: 40, 3: 31, 4: 32, 5: 21}  # tiny's episodes


@pytest.fixture
def broken(converted: dict[str, str], tmp_path: Path):
    """A copy of converted `tiny` with one corruption of tests/corruptions.py applied."""

    def make(name: str) -> str:
        root = tmp_path / "tiny"
        shutil.copytree(converted["tiny"], root)
        next(c for c in bad.CASES if c.name == name).apply(root)
        return str(root)

    return make


def check_epoch(
    indices: list[int], episodes: list[int], skipped: set[int], frames: dict[int, int] = FRAMES
) -> None:
    """Every frame of the good episodes once, none of the skipped ones, the same number of items."""
    assert len(indices) == sum(frames.values())
    assert not skipped & set(episodes)
    good = {e for e in FRAMES if e not in skipped}
    counts = Counter(indices)
    assert set(episodes) == good
    assert len(counts) == sum(FRAMES[e] for e in good)  # each good frame at least once ...
    assert sum(n - 1 for n in counts.values()) == sum(frames[e] for e in skipped)  # ... the rest repeats


@pytest.mark.parametrize(
    "corruption",
    [
        "flip in rows.arrow",  # found when fetching (crc32)
        "mp4 random bytes (resync)",  # found when the decoder opens
        "mp4 with more frames than the manifest (resync)",  # found by the frame count
    ],
)
def test_a_bad_episode_is_skipped_and_replaced(broken, corruption: str, caplog) -> None:
    root = broken(corruption)
    dataset = ShardedLeRobotDataset(root, on_error="skip", seed=4)
    with caplog.at_level(logging.WARNING, logger="lerobot_wds.reader.skip"):
        items = list(dataset)
    frames = {**FRAMES, 2: 39} if "more frames" in corruption else FRAMES  # the manifest says 39 there
    check_epoch([int(i["index"]) for i in items], [int(i["episode_index"]) for i in items], {2}, frames)
    stats = dataset.timing_stats()
    assert (stats["skipped_episodes"], stats["skipped_draws"]) == (1, frames[2])
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert warnings[0].startswith("skipping episode 2 (on_error='skip'): ")
    assert "shard-000000.tar: episode 2 (ep_000002)" in warnings[0]
    with pytest.raises(ShardFormatError, match=r"episode 2 \(ep_000002\)"):
        list(ShardedLeRobotDataset(root, seed=4))  # the default raises


def test_skip_with_workers_and_batches(broken) -> None:
    root = broken("mp4 random bytes (resync)")
    dataset = ShardedLeRobotDataset(root, on_error="skip", batch_size=8)
    batches = list(DataLoader(dataset, batch_size=None, num_workers=2))
    indices = [i for b in batches for i in b["index"].tolist()]
    check_epoch(indices, [e for b in batches for e in b["episode_index"].tolist()], {2})
    # Each worker whose frame range holds part of episode 2 skips its part (a boundary episode is shared).
    holders = [
        w for w in range(2)
        if 2 in {e.episode_index for e in reader_plan(
            dataset.entries, dataset.config, WorkerInfo(rank=0, world_size=1, worker=w, num_workers=2), 0
        ).entries}
    ]  # fmt: skip
    assert dataset.timing_stats()["skipped_episodes"] == len(holders) >= 1


def test_ranks_keep_equal_counts(broken) -> None:
    root = broken("flip in rows.arrow")
    counts = []
    for rank in range(2):
        dataset = ShardedLeRobotDataset(root, on_error="skip", rank=rank, world_size=2)
        counts.append((len(list(dataset)), dataset.samples_per_reader(dataset.worker_info())))
    assert counts[0][0] == counts[0][1] == counts[1][0] == counts[1][1]


def test_too_many_bad_episodes_in_a_row_raise(broken) -> None:
    root = broken("shard missing")  # every episode fails
    dataset = ShardedLeRobotDataset(root, on_error="skip", max_consecutive_errors=2, prefetch_bytes=0)
    with pytest.raises(FileNotFoundError, match=r"shard-000000\.tar") as caught:
        list(dataset)
    assert (
        "3 episodes failed in a row; expected at most max_consecutive_errors=2" in caught.value.__notes__[0]
    )
    with pytest.raises(ShardFormatError, match=r"6 draws failed|no episode of this reader gave"):
        list(ShardedLeRobotDataset(root, on_error="skip", episodes=[5], max_consecutive_errors=1))


def test_on_error_is_checked() -> None:
    with pytest.raises(ValueError, match=r"on_error: got 'ignore'; expected one of 'raise', 'skip'"):
        ShardedLeRobotDataset("unused", on_error="ignore")  # type: ignore[arg-type]


@pytest.mark.parametrize("batch_size", [None, 8])
def test_a_bad_first_episode_is_paid_for_by_the_first_good_item(broken, batch_size: int | None) -> None:
    root = broken("flip in rows.arrow")
    dataset = ShardedLeRobotDataset(
        root, on_error="skip", episodes=[2, 3], shuffle=False, batch_size=batch_size
    )
    out = list(dataset)
    if batch_size is None:
        indices = [int(item["index"]) for item in out]
    else:
        assert [len(b["index"]) for b in out] == [8] * 8 + [7]  # 71 draws: batch sizes as without errors
        indices = [i for b in out for i in b["index"].tolist()]
    assert len(indices) == 40 + 31
    assert set(indices) == set(range(140, 171))  # episode 3's frames only, the first ones repeated


def flip_episodes(converted: str, root: Path, episodes: list[int]) -> str:
    """A copy of a converted dataset with one byte flipped in the middle of each of ``episodes``."""
    shutil.copytree(converted, root)
    manifest = read_manifest(str(root))
    for entry in manifest.episodes:
        if entry.episode_index in episodes:
            shard = root / entry.shard
            data = bytearray(shard.read_bytes())
            data[entry.offset_bytes + entry.size_bytes // 2] ^= 0x5A
            shard.write_bytes(bytes(data))
    return str(root)


@pytest.mark.parametrize("batch_size", [None, 8])
def test_resume_with_skipped_episodes_is_exact(converted: dict[str, str], tmp_path: Path, batch_size) -> None:
    """Episodes 20 and 15 are the first of workers 0 and 1 (seed 5, pool 3): their failed draws come
    before any good item of their reader, and later ones between good items of other episodes."""
    root = flip_episodes(converted["multi"], tmp_path / "multi", [20, 15])

    def make() -> StatefulDataLoader:
        dataset = ShardedLeRobotDataset(
            root, delta_timestamps={"action": [0.0, 1 / 15]}, seed=5, episode_pool_size=3, on_error="skip",
            batch_size=batch_size,
        )  # fmt: skip
        return StatefulDataLoader(dataset, batch_size=8 if batch_size is None else None, num_workers=2)

    full = [batch["index"].tolist() for batch in make()]
    assert len(full) == 232
    for cut in (1, 14, 23, 116):
        iterator = iter(loader := make())
        head = [next(iterator)["index"].tolist() for _ in range(cut)]
        state = loader.state_dict()
        del iterator
        restored = make()
        restored.load_state_dict(state)
        assert head + [batch["index"].tolist() for batch in restored] == full, f"cut at batch {cut}"


@pytest.mark.parametrize("first_bad_frame", [0, 20])
def test_a_frame_that_does_not_decode_is_skipped_alike_in_item_and_batch_mode(
    converted: dict[str, str], monkeypatch, first_bad_frame: int
) -> None:
    """Episode 2's segment opens, but its frames from ``first_bad_frame`` on fail to decode (a fault
    injected into the decoder: a real corrupt packet fails or not depending on the codec)."""
    real = frames.EpisodeDecoder.frames

    def failing(self: frames.EpisodeDecoder, indices: np.ndarray) -> list[torch.Tensor]:
        if "episode 2" in self.where and max(indices.tolist()) >= first_bad_frame:
            raise ShardFormatError(f"{self.where}: frames {indices.tolist()} do not decode; injected")
        return real(self, indices)

    monkeypatch.setattr(frames.EpisodeDecoder, "frames", failing)
    outs = {}
    for batch_size in (None, 8):
        dataset = ShardedLeRobotDataset(converted["tiny"], on_error="skip", seed=3, batch_size=batch_size)
        values = list(dataset)
        outs[batch_size] = (
            [int(i["index"]) for i in values]
            if batch_size is None
            else [i for batch in values for i in batch["index"].tolist()]
        )
        stats = dataset.timing_stats()
        assert stats["skipped_episodes"] == 1
        assert stats["skipped_draws"] >= FRAMES[2] - first_bad_frame
    assert outs[None] == outs[8]
    assert len(outs[None]) == sum(FRAMES.values())
    episode_2 = {i - 100 for i in outs[None] if 100 <= i < 140}  # its frames that came (index 100-139)
    assert max(episode_2, default=-1) < first_bad_frame


@pytest.mark.usefixtures("half_bad_episode")
@pytest.mark.parametrize("batch_size", [None, 8])
def test_skip_stage_resumes_exactly_at_every_cut(
    converted: dict[str, str], tmp_path: Path, batch_size: int | None
) -> None:
    """Episode 4 fails to read (a flipped byte) and episode 2's frames from 20 on fail to decode
    (injected): a restore anywhere gives the rest of the uninterrupted stream."""
    root = flip_episodes(converted["tiny"], tmp_path / "tiny", [4])

    def make() -> ShardedLeRobotDataset:
        return ShardedLeRobotDataset(
            root, on_error="skip", seed=3, episode_pool_size=2, batch_size=batch_size,
            delta_timestamps={"observation.images.front": [-0.1, 0.0]},
        )  # fmt: skip

    def indices(values: list[dict]) -> list[list[int]]:
        return [v["index"].reshape(-1).tolist() for v in values]

    full = indices(list(make()))
    for cut in range(1, len(full), 3 if batch_size else 17):
        dataset = make()
        iterator = iter(dataset)
        head = indices([next(iterator) for _ in range(cut)])
        state = json.loads(json.dumps(dataset.state_dict()))
        restored = make()
        restored.load_state_dict(state)
        assert head + indices(list(restored)) == full, f"cut at {cut}: {state}"
