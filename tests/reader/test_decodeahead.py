"""DecodeAhead: items built on threads ahead of the consumer are the items and the order of one thread;
an error comes after the items before it; the reader's state counts items handed out, not built."""

from __future__ import annotations

import itertools
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from test_errors import flip_byte_in_rows

from lerobot_wds import ShardedLeRobotDataset, ShardFormatError
from lerobot_wds.reader.config import ReaderConfig
from lerobot_wds.reader.pipeline import decode_threads

WINDOWS = {"observation.images.front": [-1 / 15, 0.0], "action": [0.0, 1 / 15, 2 / 15]}  # multi: 15 fps


def items(url: str, threads: int, **options: Any) -> list[dict[str, Any]]:
    dataset = ShardedLeRobotDataset(url, delta_timestamps=WINDOWS, decode_threads=threads, **options)
    return list(dataset)


def assert_same_items(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, b[key]), (int(a["index"]), key)
            else:
                assert value == b[key]


@pytest.mark.parametrize("frame_order", ["shuffled", "forward"])
def test_threads_give_the_items_of_one_thread_in_the_same_order(
    converted: dict[str, str], frame_order: str
) -> None:
    one = items(converted["multi"], 1, frame_order=frame_order, episode_pool_size=4)
    three = items(converted["multi"], 3, frame_order=frame_order, episode_pool_size=4)
    assert_same_items(one, three)


def test_items_are_built_on_the_decode_threads(converted: dict[str, str], monkeypatch) -> None:
    from lerobot_wds.reader import decodeahead

    seen: set[str] = set()
    build = decodeahead.build_item

    def recording(*args: Any, **kwargs: Any) -> dict[str, Any]:
        seen.add(threading.current_thread().name)
        return build(*args, **kwargs)

    monkeypatch.setattr(decodeahead, "build_item", recording)
    items(converted["multi"], 3)
    assert len(seen) > 1  # the work is spread over the threads
    assert all(name.startswith("lerobot-wds-decode") for name in seen)


def test_an_unreadable_episode_fails_after_the_items_before_it(
    converted: dict[str, str], tmp_path: Path
) -> None:
    root = tmp_path / "multi"
    shutil.copytree(converted["multi"], root)
    flip_byte_in_rows(root, 7)
    handed_out = []
    for threads in (1, 3):
        dataset = ShardedLeRobotDataset(
            str(root), decode_threads=threads, episode_pool_size=2, prefetch_bytes=0
        )
        got: list[int] = []
        with pytest.raises(ShardFormatError, match="crc32"):
            got.extend(int(item["index"]) for item in dataset)
        handed_out.append(got)
    assert handed_out[0] == handed_out[1]
    assert handed_out[0]  # the error is not at the start


def test_state_counts_items_handed_out_not_built(converted: dict[str, str]) -> None:
    url = converted["multi"]
    full = [int(item["index"]) for item in ShardedLeRobotDataset(url, decode_threads=1)]
    dataset = ShardedLeRobotDataset(url, decode_threads=4)
    stream = iter(dataset)
    head = [int(item["index"]) for item in itertools.islice(stream, 37)]
    state = dataset.state_dict()
    assert state["draws"] == 37
    restored = ShardedLeRobotDataset(url, decode_threads=4)
    restored.load_state_dict(state)
    assert head + [int(item["index"]) for item in restored] == full


def test_decode_threads_default_and_where_it_stays_one() -> None:
    assert decode_threads(ReaderConfig(decode_threads=3)) == 3
    assert decode_threads(ReaderConfig()) >= 1  # up to 4 cores here, in the main process
    assert decode_threads(ReaderConfig(decode_threads=3, image_transforms=lambda x: x)) == 1
    with pytest.raises(ValueError, match="decode_threads: got 0; expected >= 1 or None"):
        ReaderConfig(decode_threads=0)


@pytest.mark.parametrize("frame_order", ["shuffled", "forward"])
def test_batch_rows_decoded_on_threads_equal_one_thread(converted: dict[str, str], frame_order: str) -> None:
    def batches(threads: int) -> list[dict[str, Any]]:
        dataset = ShardedLeRobotDataset(
            converted["multi"], delta_timestamps=WINDOWS, decode_threads=threads, batch_size=16,
            frame_order=frame_order, episode_pool_size=6, return_uint8=True, channels_last=True,
        )  # fmt: skip
        return list(dataset)

    assert_same_items(batches(1), batches(3))
