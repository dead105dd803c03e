"""The iteration of one reader: draws from the pool, then items (or batches) built and decoded last."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch

from .episodes import EpisodeSource
from .frames import DecoderCache
from .items import ItemSpec, TimingStats, build_batch, build_item
from .order import WorkerInfo
from .pool import PaddedPool
from .prefetch import EpisodePrefetcher

# Counters reach timing_stats every this many items (and at the end): a few microseconds each time.
PUBLISH_EVERY_ITEMS = 16


class SampleStream(Iterator[dict[str, Any]]):
    """Draws from the pool, then builds (and decodes) the item: decode is stateless and last."""

    def __init__(
        self,
        who: WorkerInfo,
        epoch: int,
        pool: PaddedPool,
        source: EpisodeSource,
        prefetcher: EpisodePrefetcher | None,
        spec: ItemSpec,
        decoders: DecoderCache,
        timing_row: torch.Tensor | None = None,
    ) -> None:
        self.who = who
        self.epoch = epoch
        self.pool = pool
        self.source = source
        self.prefetcher = prefetcher
        self.spec = spec
        self.decoders = decoders
        self.timing = TimingStats()
        self.timing_row = timing_row
        if timing_row is not None:
            timing_row.zero_()

    def __next__(self) -> dict[str, Any]:
        try:
            draw = next(self.pool)
        except StopIteration:
            self.close()
            raise
        item = build_item(draw.episode, draw.frame_index, self.spec, self.decoders, self.timing)
        if self.timing.items % PUBLISH_EVERY_ITEMS == 0:
            self.publish()
        return item

    def publish(self) -> None:
        """Write this reader's counters into its shared row (read by ``timing_stats`` anywhere)."""
        if self.timing_row is None:
            return
        prefetch = self.prefetcher.stats if self.prefetcher else None
        waits = prefetch.waits + prefetch.misses if prefetch else self.source.fetched
        values = [self.source.fetch_s, self.timing.decode_s, self.source.fetched, self.timing.items,
                  self.source.requests, waits]  # fmt: skip
        self.timing_row.copy_(torch.tensor(values, dtype=torch.float64))

    def close(self) -> None:
        """Publish the last counters and stop reading ahead (the epoch ended, or a new iteration replaced
        this one)."""
        self.publish()
        if self.prefetcher is not None:
            self.prefetcher.close()


class BatchStream(Iterator[dict[str, Any]]):
    """Collated batches of ``batch_size`` draws (a reader's last batch is smaller unless ``drop_last``);
    equal to ``default_collate`` of the same items (see :func:`build_batch`)."""

    def __init__(self, samples: SampleStream, batch_size: int, drop_last: bool) -> None:
        self.samples = samples
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __next__(self) -> dict[str, Any]:
        draws = list(itertools.islice(self.samples.pool, self.batch_size))
        if not draws or (self.drop_last and len(draws) < self.batch_size):
            self.samples.close()
            raise StopIteration
        s = self.samples
        batch = build_batch([(d.episode, d.frame_index) for d in draws], s.spec, s.decoders, s.timing)
        s.publish()
        return batch
