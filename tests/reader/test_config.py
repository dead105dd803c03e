"""ReaderConfig: the dataset's keywords are its fields; presets; choices checked with a clear error."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields

import pytest

from lerobot_wds import ReaderConfig, ShardedLeRobotDataset


def test_dataset_keywords_are_the_config_fields_with_the_same_defaults() -> None:
    parameters = inspect.signature(ShardedLeRobotDataset.__init__).parameters
    keywords = {name: p.default for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
    defaults = {
        f.name: f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        for f in fields(ReaderConfig)
    }
    assert list(keywords) == list(defaults)
    assert keywords == defaults


def test_presets_set_what_is_not_given() -> None:
    lerobot = ReaderConfig()
    assert (lerobot.frame_order, lerobot.return_uint8, lerobot.channels_last) == ("shuffled", False, False)
    fast = ReaderConfig(preset="fast")
    assert (fast.frame_order, fast.return_uint8, fast.channels_last) == ("forward", True, True)
    mixed = ReaderConfig(preset="fast", return_uint8=False)  # an explicit option wins
    assert (mixed.frame_order, mixed.return_uint8, mixed.channels_last) == ("forward", False, True)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"preset": "quick"}, r"preset: got 'quick'; expected one of 'lerobot', 'fast'"),
        ({"frame_order": "random"}, r"frame_order: got 'random'; expected one of 'shuffled', 'forward'"),
        ({"episode_pool_size": 0}, r"episode_pool_size: got 0; expected >= 1"),
        ({"prefetch_bytes": -1}, r"prefetch_bytes: got -1; expected >= 0"),
        ({"batch_size": 0}, r"batch_size: got 0; expected >= 1 or None"),
        ({"rank": 0}, r"rank, world_size: got 0, None; expected both or neither"),
        ({"video_decode_device": "cuda"}, r"video_decode_device: got 'cuda', but torch sees no CUDA"),
    ],
)
def test_bad_options_are_refused_clearly(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReaderConfig(**options)  # type: ignore[arg-type]


def test_episodes_are_stored_sorted_and_unique() -> None:
    assert ReaderConfig(episodes=[5, 3, 5]).episodes == (3, 5)
