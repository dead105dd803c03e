"""EpisodeSource: fetch this reader's episodes as encoded bytes (rows, per-camera mp4 segments)."""

from __future__ import annotations

import threading
import time
import zlib
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import format as fmt
from .. import storage
from ..sample import entry_problems, parse_sample, read_sample
from .telemetry import Counters


@dataclass(frozen=True, slots=True)
class Episode:
    """One episode held in memory: its rows as numpy columns and its video segments still encoded."""

    entry: fmt.EpisodeEntry
    meta: fmt.EpisodeMeta
    columns: dict[str, np.ndarray]  # feature key -> (num_frames, *shape)
    videos: dict[str, bytes]  # camera key -> standalone mp4
    where: str = ""  # "<shard url>: episode N (ep_00000N)", for errors found later (decoding)

    @property
    def num_frames(self) -> int:
        return self.entry.num_frames


def parse_episode(
    members: dict[str, bytes],
    entry: fmt.EpisodeEntry,
    camera_keys: list[str],
    where: str,
    features: dict[str, Any],
) -> Episode:
    """Check a sample's members against the format and its manifest entry; rows become numpy columns
    (refused before decompression past what ``features`` and the entry's frame count allow)."""
    max_bytes = fmt.max_rows_bytes(features, entry.num_frames, where)
    sample = parse_sample(members, camera_keys, where, max_rows=entry.num_frames, max_rows_bytes=max_bytes)
    problems = entry_problems(sample, entry)
    if problems:
        raise fmt.ShardFormatError(f"{where}: {'; '.join(problems)}")
    columns = {name: _to_numpy(sample.rows.column(name)) for name in sample.rows.column_names}
    return Episode(entry=entry, meta=sample.meta, columns=columns, videos=sample.videos, where=where)


def _to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """Arrow column -> numpy with the feature's shape: lists of one length in every row (fixed-size, or
    variable-size as LeRobot's v2.1->v3.0 converter writes them: ``list<float>``) become trailing axes."""
    array = column.combine_chunks()
    shape: list[int] = []
    while (length := _list_length(array)) is not None:
        shape.append(length)
        array = array.flatten()
    if pa.types.is_struct(array.type) or pa.types.is_nested(array.type) or array.null_count:
        return np.array(column.to_pylist(), dtype=object)  # image structs, ragged lists: left to the caller
    values = array.to_numpy(zero_copy_only=False)
    return values.reshape(len(column), *shape) if shape else values


def _list_length(array: pa.Array) -> int | None:
    """The length every list of ``array`` has, or None (not a list array, nulls, or ragged)."""
    if pa.types.is_fixed_size_list(array.type):
        return int(array.type.list_size)
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)) or array.null_count:
        return None
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
    if len(lengths) == 0 or (lengths != lengths[0]).any():
        return None
    return int(lengths[0])


class EpisodeSource:
    """Fetches episodes by the manifest's byte offsets: one ranged read per run of adjacent episodes.

    Stateless apart from a cache of shard sizes and counters: which episode comes next is the
    schedule's business, so a restored reader re-fetches exactly the episodes it still needs by offset.
    Safe to call from several threads (the read-ahead's).
    """

    def __init__(
        self,
        root: str,
        camera_keys: list[str],
        features: dict[str, Any],
        storage_options: storage.StorageOptions | None = None,
        retry: storage.RetryPolicy | None = None,
        counters: Counters | None = None,
    ) -> None:
        self.root = root
        self.camera_keys = camera_keys
        self.features = features  # the manifest's: bounds what an episode's rows may inflate to
        self.storage_options = storage_options
        self.retry = retry
        self.counters = counters or Counters()  # fetch_s, episodes, requests
        self._shard_sizes: dict[str, Future[int]] = {}
        self._size_lock = threading.Lock()

    def fetch(self, entry: fmt.EpisodeEntry) -> Episode:
        return self.fetch_run([entry])[0]

    def fetch_run(self, entries: list[fmt.EpisodeEntry]) -> list[Episode]:
        """Episodes stored back to back in one shard, read with one ranged read."""
        started = time.perf_counter()
        first, last = entries[0], entries[-1]
        url = storage.join(self.root, first.shard)
        start, end = first.offset_bytes, last.offset_bytes + last.size_bytes
        shard_bytes = self._shard_size(url)
        if shard_bytes < end:
            raise fmt.ShardFormatError(
                f"{_where(url, last)}: ends at byte {end}; the shard has {shard_bytes} bytes "
                "(truncated shard)"
            )
        blob = storage.read_range(url, self.storage_options, start=start, end=end, retry=self.retry)
        episodes = []
        for entry in entries:
            if entry.shard != first.shard:
                shown = storage.redact(url)
                raise ValueError(f"{shown}: fetch_run got episodes of several shards; expected one")
            where = _where(url, entry)
            offset = entry.offset_bytes - start
            data = blob[offset : offset + entry.size_bytes]
            if entry.crc32 is not None and (crc := zlib.crc32(data)) != entry.crc32:
                span = f"bytes {entry.offset_bytes}..{entry.offset_bytes + entry.size_bytes}"
                raise fmt.ShardFormatError(
                    f"{where}: {span} have crc32 {crc:08x}; manifest says {entry.crc32:08x} "
                    "(corrupt or rewritten shard)"
                )
            members = _members(data, entry, where)
            episodes.append(parse_episode(members, entry, self.camera_keys, where, self.features))
        self.counters.add(fetch_s=time.perf_counter() - started, episodes=len(entries), requests=1)
        return episodes

    def _shard_size(self, url: str) -> int:
        """One size request per shard, made by whichever thread asks first; the others wait for its answer
        (or its error) instead of queueing requests of their own behind a lock: on a hung server they
        all fail within one ``retry.timeout_s``. A failed request is forgotten: a later fetch asks again."""
        with self._size_lock:
            future = self._shard_sizes.get(url)
            asking = future is None
            if future is None:
                future = self._shard_sizes[url] = Future()
        if asking:
            try:
                future.set_result(storage.size_bytes(url, self.storage_options, retry=self.retry))
            except BaseException as exc:
                with self._size_lock:
                    del self._shard_sizes[url]
                future.set_exception(exc)
        return future.result()


def _where(url: str, entry: fmt.EpisodeEntry) -> str:
    return f"{storage.redact(url)}: episode {entry.episode_index} ({fmt.episode_key(entry.episode_index)})"


def _members(blob: bytes | memoryview, entry: fmt.EpisodeEntry, where: str) -> dict[str, bytes]:
    """The members of one sample's tar bytes, by suffix."""
    return read_sample(blob, fmt.episode_key(entry.episode_index), where)
