"""Converted fixtures shared by the reader tests (converted once per session)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from helpers import FIXTURES, fixture_dir

from lerobot_wds import ConvertConfig, ShardFormatError, convert
from lerobot_wds.reader import frames

# multi and h264 with small shards: several shards, episodes read by ranged reads across them.
SHARD_SIZE_MB = {"tiny": 256.0, "multi": 0.4, "h264": 0.3, "g1": 12.0}


@pytest.fixture(autouse=True)
def one_intra_op_thread() -> Iterator[None]:
    """One torch thread in the test process, as in DataLoader workers.

    With ``num_workers=0`` the default collate stacks each batch in this process; on a shared 2-core
    machine under load, a stack split across 2 threads waited ~8 ms for a descheduled thread (cProfile:
    7.4 s of a 9.6 s epoch of `multi`), which made whole-epoch tests several times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("reader-converted")
    urls = {}
    for name in (*FIXTURES, "g1"):
        convert(str(fixture_dir(name)), str(out / name), ConvertConfig(shard_size_mb=SHARD_SIZE_MB[name]))
        urls[name] = str(out / name)
    return urls


@pytest.fixture
def half_bad_episode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Episode 2's segment opens but its frames from 20 on fail to decode (a fault injected into the
    decoder: a real corrupt packet fails or not depending on the codec), so whether a frame of it comes
    depends on the order its reader draws them in: an elastic restore must keep what the saved reader
    had found."""
    real = frames.EpisodeDecoder.frames

    def failing(self: frames.EpisodeDecoder, indices: np.ndarray) -> list[torch.Tensor]:
        if "episode 2" in self.where and max(indices.tolist()) >= 20:
            raise ShardFormatError(f"{self.where}: frames {indices.tolist()} do not decode; injected")
        return real(self, indices)

    monkeypatch.setattr(frames.EpisodeDecoder, "frames", failing)
