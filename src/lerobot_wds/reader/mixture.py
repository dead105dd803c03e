"""``MixedDataset``: several converted datasets streamed as one, in exact proportions per reader.

    apportion       a reader's quota split over the sources by the weights (mixorder.py; exact)
    pick_order      which source yields each of the reader's samples: a seeded shuffle (mixorder.py)
    MixedStream     one reader's iteration: pulls each pick from that source's own stream (its pool,
                    windows, decode), a new lap of a source when it runs out; state = picks, and per
                    source its lap and its stages' state (draws, and skip_* with on_error="skip")
    MixedDataset    the torch boundary (iter, set_epoch, state_dict), checks, ``meta`` (mixmeta.py)

Each source keeps its own pipeline and its own split of episodes over ranks x workers: reader ``who``
of the mixture pulls from reader ``who`` of every source. Order is a pure function of (seed, epoch,
rank, worker), as in a single dataset.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import IterableDataset

from ..orphans import exit_with_parent
from .dataset import ShardedLeRobotDataset
from .items import Item
from .mixmeta import MixtureMeta, feature_signature, mixture_meta
from .mixorder import apportion, first_overflow, lap_epoch, pick_order
from .order import WorkerInfo
from .pipeline import ReaderStream
from .resumable import Resumable, check_choice
from .telemetry import FIELDS

OnExhausted = Literal["cycle", "stop"]
WeightBy = Literal["samples", "episodes"]

MAX_SOURCES = np.iinfo(np.int16).max  # picks are stored as int8 (<= 127 sources) or int16


class MixedStream(Iterator[dict[str, Any]]):
    """One reader's epoch of a mixture: the pick order, each source's stream, and how far each went."""

    def __init__(
        self,
        mixture: MixedDataset,
        who: WorkerInfo,
        epoch: int,
        *,
        picks: np.ndarray,
        stop_at: int,
        position: int = 0,
        laps: Sequence[int] | None = None,
        stages: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self.mixture = mixture
        self.who = who
        self.epoch = epoch
        self.picks = picks
        self.stop_at = stop_at
        self.position = position  # picks made: items handed out
        num_sources = len(mixture.datasets)
        self.laps = list(laps) if laps is not None else [0] * num_sources
        # each source's stages' state (ReaderStream.state) where its stream starts on its current lap
        self._stages = [dict(s) for s in stages] if stages is not None else [{"draws": 0}] * num_sources
        needed = set(np.unique(picks[position:stop_at]).tolist())
        self.streams: list[ReaderStream | None] = [
            self._open(i) if i in needed else None for i in range(num_sources)
        ]
        for dataset, stream in zip(mixture.datasets, self.streams, strict=True):
            if stream is None:  # its counters of an earlier iteration do not count in this one
                dataset.reset_timing_stats(who)

    def _open(self, source: int) -> ReaderStream:
        dataset = self.mixture.datasets[source]
        epoch = lap_epoch(self.epoch, self.laps[source])
        skip = self.mixture.drop[source]
        return dataset._open_stream(self.who, epoch=epoch, skip_videos=skip, state=self._stages[source])

    @property
    def stages(self) -> list[dict[str, Any]]:
        """Each source's stages' state on its current lap: ``draws`` handed out, and ``skip_*`` when it
        skips bad episodes (its repeats owed and episodes failed, which a restore must continue)."""
        return [s.state() if s is not None else d for s, d in zip(self.streams, self._stages, strict=True)]

    def __next__(self) -> dict[str, Any]:
        if self.position >= self.stop_at:
            self.close()
            raise StopIteration
        source = int(self.picks[self.position])
        item = self._pull(source)
        self.position += 1
        return self.mixture.label(source, item)

    def _pull(self, source: int) -> dict[str, Any]:
        stream = self.streams[source] or self._open(source)
        self.streams[source] = stream
        try:
            return next(stream)
        except StopIteration:
            pass
        # Only with on_exhausted="cycle": with "stop", stop_at ends the epoch before any source runs out.
        self.laps[source] += 1  # the source's next lap, a fresh shuffle
        self._stages[source] = {"draws": 0}
        finished = stream.counters
        stream = self.streams[source] = self._open(source)
        stream.counters.add(**{name: getattr(finished, name) for name in FIELDS})  # timing_stats: all laps
        stream.publish()
        try:
            return next(stream)
        except StopIteration:
            raise ValueError(
                f"MixedDataset: source {self.mixture.names[source]!r} yields nothing for reader {self.who}; "
                "expected at least one sample per lap"
            ) from None

    def close(self) -> None:
        """Stop every source's read-ahead (the epoch ended, or a new iteration began)."""
        for stream in self.streams:
            if stream is not None:
                stream.close()


class MixedDataset(Resumable, IterableDataset[dict[str, Any]]):
    """Several converted datasets streamed as one, each sample's source picked in exact proportions.

    Each source (a :class:`ShardedLeRobotDataset`) keeps its own episode pool, windows and decode, and
    its own split of episodes over ranks and DataLoader workers. Every reader (rank x worker) yields
    ``q = samples_per_epoch // readers`` samples per epoch (the same on every rank: DDP's contract),
    split over the sources by largest remainder of the weights, so reader counts are within 1 of
    ``weight * q``; their order is a seeded shuffle of those counts, a pure function of
    (seed, epoch, rank, worker). Over the epoch (``q * readers`` samples: ``samples_per_epoch`` rounded
    down to a multiple of the readers), each source's count differs from ``weight * q * readers`` by
    less than the number of readers, and from ``weight * samples_per_epoch`` by less than twice it.

    Args:
        datasets: the sources, built without ``batch_size`` (a mixture builds items: batch with
            ``DataLoader(batch_size=...)``), with the same rank and
            world size.
        weights: one non-negative weight per source (normalised; proportions of the samples).
        seed: the pick order's seed (each source shuffles with its own ``seed``).
        samples_per_epoch: samples per epoch over all readers; default: the sources' frames summed
            (the weights still apply: a light source is cycled, a heavy one not finished).
        weight_by: ``"samples"``: weights are shares of the samples; ``"episodes"``: each weight is
            multiplied by the source's number of (selected) episodes before normalising.
        names: each source's ``dataset_name`` (default: the last component of its URL).
        rename: per source, ``{key: new_key}`` applied to its items (``{key}_is_pad`` too), features
            and stats, e.g. to tell two cameras apart or to give equal things one name.
        drop: per source, keys (its own names, before renaming) left out of its items (``{key}_is_pad``
            too; cameras are then not decoded), features, stats and the shape checks: e.g. a camera
            that one source records at another size. Items then differ in keys across sources; to
            batch them, drop (or rename) a key in every source that has it.
        on_exhausted: a source that runs out mid-epoch: ``"cycle"`` streams its next lap (a fresh
            shuffle: lap ``L`` is the source's epoch ``epoch + L * 2**32``); ``"stop"`` ends the epoch
            at the first pick of a source with nothing left (the earliest over the ranks, so that every
            rank stops at the same count; proportions then hold in expectation only).

    Items: the source's item with its keys renamed, plus ``dataset_index`` (0-d int64, the source's
    position) and ``dataset_name`` (str). Sources must agree on fps and on the shape and dtype (and
    window length) of every key they share, after renaming; ``meta`` has per-source ``meta``, merged
    features and stats aggregated as LeRobot's ``aggregate_stats``.

    Example:
        >>> a = ShardedLeRobotDataset("out/a", delta_timestamps={"action": [0, 1 / 30]})
        >>> b = ShardedLeRobotDataset("out/b", delta_timestamps={"action": [0, 1 / 30]})
        >>> mixture = MixedDataset([a, b], weights=[0.7, 0.3], samples_per_epoch=10_000)
        >>> loader = DataLoader(mixture, batch_size=32, num_workers=2)
    """

    def __init__(
        self,
        datasets: Sequence[ShardedLeRobotDataset],
        weights: Sequence[float],
        *,
        seed: int = 0,
        samples_per_epoch: int | None = None,
        weight_by: WeightBy = "samples",
        names: Sequence[str] | None = None,
        rename: Sequence[Mapping[str, str]] | None = None,
        drop: Sequence[Collection[str]] | None = None,
        on_exhausted: OnExhausted = "cycle",
    ) -> None:
        super().__init__()
        check_choice("weight_by", weight_by, WeightBy, where="MixedDataset: ")
        check_choice("on_exhausted", on_exhausted, OnExhausted, where="MixedDataset: ")
        self.datasets = list(datasets)
        _check_lengths(self.datasets, weights=weights, names=names, rename=rename, drop=drop)
        if samples_per_epoch is not None and samples_per_epoch < 1:
            raise ValueError(
                f"MixedDataset: samples_per_epoch: got {samples_per_epoch}; expected >= 1 or None"
            )
        self.names = list(names) if names is not None else [_default_name(d.url) for d in self.datasets]
        self.rename = [dict(r) for r in rename] if rename is not None else [{} for _ in self.datasets]
        if drop is not None and any(isinstance(keys, str) for keys in drop):
            raise TypeError(f"MixedDataset: drop: got {list(drop)!r}; expected one list of keys per source")
        self.drop = [frozenset(d) for d in drop] if drop is not None else [frozenset() for _ in self.datasets]
        self.seed = seed
        self.weight_by = weight_by
        self.on_exhausted = on_exhausted
        self.weights = _shares(weights, self.datasets, weight_by)
        self.samples_per_epoch = samples_per_epoch or sum(d.num_frames for d in self.datasets)
        self._check_sources()
        self.meta: MixtureMeta = mixture_meta(
            [d.meta for d in self.datasets], self.rename, self.names, self.drop
        )
        self._share_epoch()  # set_epoch reshuffles the picks and every source (in running workers too)
        self._stream: MixedStream | None = None
        self._where = "MixedDataset"
        self._what_changed = (
            "other sources or other mixture options (weights, seed, samples_per_epoch, weight_by, "
            "on_exhausted)"
        )

    # ------------------------------------------------------------------ checks

    def _check_sources(self) -> None:
        first_who = self.datasets[0].worker_info()
        signatures: dict[str, tuple[int, Any]] = {}  # key -> (first source with it, its signature)
        for i, dataset in enumerate(self.datasets):
            name = self.names[i]
            if dataset.config.batch_size is not None:
                raise ValueError(
                    f"MixedDataset: source {name!r} was built with batch_size={dataset.config.batch_size}; "
                    "expected None: a mixture builds items (batch them with DataLoader(batch_size=...))"
                )
            who = dataset.worker_info()
            if (who.rank, who.world_size) != (first_who.rank, first_who.world_size):
                raise ValueError(
                    f"MixedDataset: source {name!r} has rank {who.rank} of {who.world_size}, source "
                    f"{self.names[0]!r} rank {first_who.rank} of {first_who.world_size}; expected equal"
                )
            if dataset.fps != self.datasets[0].fps:
                raise ValueError(
                    f"MixedDataset: sources {self.names[0]!r} and {name!r} disagree on fps: "
                    f"{self.datasets[0].fps} and {dataset.fps}; expected equal"
                )
            self._check_rename(i)
            for key, signature in feature_signature(dataset, self.rename[i], self.drop[i]).items():
                if key not in signatures:
                    signatures[key] = (i, signature)
                    continue
                j, other = signatures[key]
                if other != signature:
                    raise ValueError(
                        f"MixedDataset: sources {self.names[j]!r} and {name!r} disagree on {key!r}: "
                        f"{_describe(other)} in {self.names[j]!r}, {_describe(signature)} in {name!r}; "
                        "expected equal (or rename the key in one source: rename=[{...}, ...], or drop it: "
                        "drop=[[...], ...])"
                    )

    def _check_rename(self, source: int) -> None:
        keys = set(self.datasets[source].meta.features)
        renamed = self.rename[source]
        unknown = sorted(set(renamed) - keys)
        if unknown:
            raise ValueError(
                f"MixedDataset: rename of source {self.names[source]!r}: keys {unknown} are not its "
                f"features; expected some of {sorted(keys)}"
            )
        dropped = self.drop[source]
        problems = {"are not its features": dropped - keys, "are renamed too": dropped & set(renamed)}
        for problem, names in problems.items():
            if names:
                raise ValueError(
                    f"MixedDataset: drop of source {self.names[source]!r}: keys {sorted(names)} {problem}; "
                    f"expected some of {sorted(keys - set(renamed))}"
                )
        targets = list(renamed.values())
        clashes = sorted({t for t in targets if targets.count(t) > 1 or t in keys - set(renamed)})
        if clashes:
            raise ValueError(
                f"MixedDataset: rename of source {self.names[source]!r} maps onto {clashes}, which it "
                "already has (or maps twice); expected new names"
            )

    # ------------------------------------------------------------------ epoch and order

    def timing_stats(self) -> dict[str, Any]:
        """The sources' :meth:`ShardedLeRobotDataset.timing_stats` over the iteration under way (every lap
        of a cycled source), summed over this process's DataLoader workers: ``{"total": counters,
        "sources": [counters, ...]}``, the sources in ``dataset_index`` order. A dataset object given as
        two sources (or used elsewhere at the same time) shares its counters: give each source its own."""
        sources = [dataset.timing_stats() for dataset in self.datasets]
        total = {name: sum(stats[name] for stats in sources) for name in FIELDS}
        return {"total": total, "sources": sources}

    def worker_info(self) -> WorkerInfo:
        """This process's reader identity (the sources' rank and world size, checked equal)."""
        return self.datasets[0].worker_info()

    def counts_per_reader(self, who: WorkerInfo) -> list[int]:
        """Samples each source gives reader ``who`` per epoch (the same for every reader)."""
        quota = self.samples_per_epoch // who.num_slots
        if quota == 0:
            raise ValueError(
                f"MixedDataset: samples_per_epoch={self.samples_per_epoch} is less than the "
                f"{who.num_slots} readers (ranks x workers); expected at least one sample per reader"
            )
        return apportion(self.weights, quota)

    def _picks(self, who: WorkerInfo, epoch: int, counts: list[int]) -> np.ndarray:
        return pick_order(counts, seed=self.seed, epoch=epoch, slot=who.slot)

    def _stop_at(self, who: WorkerInfo, epoch: int, counts: list[int]) -> int:
        """Where this reader's epoch ends: all its picks ("cycle"), or the earliest overflow of any
        rank's worker ``who.worker`` ("stop": capacities are equal across ranks, so are the counts)."""
        capacities = [d.samples_per_reader(who, epoch) for d in self.datasets]
        for i, (capacity, count) in enumerate(zip(capacities, counts, strict=True)):
            if capacity == 0 and count > 0:
                raise ValueError(
                    f"MixedDataset: source {self.names[i]!r} has no episodes for reader {who} (it has "
                    f"{self.datasets[i].num_episodes} episodes for {who.num_slots} readers); expected "
                    "fewer DataLoader workers, or weight 0 for it"
                )
        if self.on_exhausted == "cycle":
            return sum(counts)
        ranks = (WorkerInfo(rank=r, world_size=who.world_size, worker=who.worker,
                            num_workers=who.num_workers) for r in range(who.world_size))  # fmt: skip
        return min(first_overflow(self._picks(other, epoch, counts), capacities) for other in ranks)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        exit_with_parent()  # in a DataLoader worker: exit when the training process is gone
        who = self.worker_info()
        if self._stream is not None:
            self._stream.close()
        epoch = self.epoch
        counts = self.counts_per_reader(who)
        picks = self._picks(who, epoch, counts)
        stop_at = self._stop_at(who, epoch, counts)
        state = self._restored_state(who) or {"picks": 0, "sources": [{"lap": 0, "draws": 0}] * len(counts)}
        self._stream = MixedStream(
            self, who, epoch, picks=picks, stop_at=stop_at, position=int(state["picks"]),
            laps=[int(s["lap"]) for s in state["sources"]],
            stages=[{k: v for k, v in s.items() if k != "lap"} for s in state["sources"]],
        )  # fmt: skip
        return self._stream

    def label(self, source: int, item: dict[str, Any]) -> dict[str, Any]:
        """``item`` of ``source`` with its keys dropped and renamed, ``dataset_index`` and ``dataset_name``
        added."""
        dropped = self.drop[source]
        if dropped:
            item = Item((key, value) for key, value in item.items() if _feature_of(key) not in dropped)
        renamed = self.rename[source]
        if renamed:
            item = Item((_renamed_key(key, renamed), value) for key, value in item.items())
        item["dataset_index"] = torch.tensor(source, dtype=torch.int64)
        item["dataset_name"] = self.names[source]
        return item

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Where this reader is: picks made, and each source's lap and its stages' state on it (draws,
        and with ``on_error="skip"`` the ``skip_*`` keys: JSON-able ints and lists of ints)."""
        stream = self._stream
        stages = stream.stages if stream is not None else [{"draws": 0}] * len(self.datasets)
        laps = stream.laps if stream is not None else [0] * len(self.datasets)
        return {
            **self._envelope(
                stream.epoch if stream is not None else self.epoch,
                stream.who if stream is not None else self.worker_info(),
            ),
            "picks": stream.position if stream is not None else 0,
            "sources": [{"lap": lap, **stage} for lap, stage in zip(laps, stages, strict=True)],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume where :meth:`state_dict` was taken (the next ``iter`` yields what would have come next).
        Refuses a state of another mixture (sources, weights, options) or another number of readers."""
        super().load_state_dict(state)

    def _identity(self) -> dict[str, Any]:
        """The sources (their own fingerprints) and every option that changes the order."""
        return {
            "sources": [d.fingerprint() for d in self.datasets],
            "weights": [str(w) for w in self.weights],
            "options": [self.seed, self.samples_per_epoch, self.weight_by, self.on_exhausted],
        }

    def _restored_state(self, who: WorkerInfo) -> dict[str, Any] | None:
        state = self._take_restore()
        if state is not None:
            fix = "restoring with another number of ranks or workers is not supported"
            self._check_saved_by(state, who, fix)
        return state


def _check_lengths(datasets: Sequence[ShardedLeRobotDataset], **per_source: Sequence[Any] | None) -> None:
    if not datasets or len(datasets) > MAX_SOURCES:
        raise ValueError(f"MixedDataset: got {len(datasets)} datasets; expected 1 to {MAX_SOURCES}")
    for name, values in per_source.items():
        if values is not None and len(values) != len(datasets):
            raise ValueError(
                f"MixedDataset: {name}: got {len(values)}; expected one per dataset ({len(datasets)})"
            )


def _shares(
    weights: Sequence[float], datasets: Sequence[ShardedLeRobotDataset], weight_by: WeightBy
) -> list[Fraction]:
    """The weights as exact fractions summing to 1 (times each source's episodes with "episodes")."""
    for weight in weights:
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"MixedDataset: weights: got {list(weights)}; expected finite numbers >= 0")
    exact = [Fraction(w) for w in weights]
    if weight_by == "episodes":
        exact = [w * d.num_episodes for w, d in zip(exact, datasets, strict=True)]
    total = sum(exact, Fraction(0))
    if total == 0:
        raise ValueError(f"MixedDataset: weights: got {list(weights)}; expected a positive sum")
    return [w / total for w in exact]


def _default_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _feature_of(key: str) -> str:
    """The feature an item key belongs to: ``key`` itself, or ``x`` for ``x_is_pad``."""
    return key.removesuffix("_is_pad")


def _renamed_key(key: str, rename: Mapping[str, str]) -> str:
    if key in rename:
        return rename[key]
    if key.endswith("_is_pad") and key[: -len("_is_pad")] in rename:
        return f"{rename[key[: -len('_is_pad')]]}_is_pad"
    return key


def _describe(signature: Any) -> str:
    shape, dtype = signature
    return f"shape {shape} dtype {dtype}"
