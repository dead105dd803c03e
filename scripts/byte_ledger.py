"""Where every byte a remote conversion task downloads goes, from the source files' own layout.

Used by ``bench_remote_source.py``: :func:`recording` wraps :class:`lerobot_wds.storage.RangedFile`'s
fetch and read methods (in the benchmark only) to log each GET ``[start, end)`` and each read the parsers
made, per file URL; :func:`task_breakdown` labels those bytes from the local copy of the same file:

- parquet: ``parquet_footer`` (metadata + length + magic), ``parquet_rows_needed`` / ``parquet_rows_other``
  (a row group's column chunks, split by the share of its rows that belong to the task's episodes: a
  column chunk is one compressed unit, so a row group holding other episodes' rows costs them too);
- mp4: ``packets_task`` (packets of frames of the task's episodes), ``packets_other`` (packets of other
  episodes), ``mp4_boxes`` (everything else: ftyp, moov, box headers);
- across kinds: ``fetched_twice`` (a byte fetched again within the task: counted once above, the repeats
  here) and ``read_ahead_unused`` (fetched, never handed to a parser).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lerobot_wds import storage
from lerobot_wds.converter.source import SourceEpisode

_FOOTER, _OTHER, _TASK_PACKET, _OTHER_PACKET = -1, -2, -3, -4  # labels; >= 0: a parquet row group


class Log:
    """Per file URL, the GETs ``(start, end)`` and parser reads ``(start, end)`` seen while recording."""

    def __init__(self) -> None:
        self.fetches: dict[str, list[tuple[int, int]]] = {}
        self.reads: dict[str, list[tuple[int, int]]] = {}


@contextmanager
def recording() -> Iterator[Log]:
    log = Log()
    if not hasattr(storage, "RangedFile"):  # a version without byte-range reads (a --baseline run)
        yield log
        return
    fetch, readinto = storage.RangedFile._fetch, storage.RangedFile.readinto
    read1 = getattr(storage.RangedFile, "read1", None)  # None: a version whose PyAV reads use readinto

    def logged_fetch(self: storage.RangedFile, start: int, end: int) -> memoryview:
        data = fetch(self, start, end)
        log.fetches.setdefault(self.url, []).append((start, start + len(data)))
        return data

    def logged_readinto(self: storage.RangedFile, buffer: Any) -> int:
        start = self.tell()
        count = readinto(self, buffer)
        log.reads.setdefault(self.url, []).append((start, start + count))
        return count

    def logged_read1(self: storage.RangedFile, size: int = -1) -> bytes:
        start = self.tell()
        data = read1(self, size)  # type: ignore[misc]
        log.reads.setdefault(self.url, []).append((start, start + len(data)))
        return data

    storage.RangedFile._fetch = logged_fetch  # type: ignore[method-assign]
    storage.RangedFile.readinto = logged_readinto  # type: ignore[method-assign]
    if read1 is not None:
        storage.RangedFile.read1 = logged_read1  # type: ignore[method-assign]
    try:
        yield log
    finally:
        storage.RangedFile._fetch = fetch  # type: ignore[method-assign]
        storage.RangedFile.readinto = readinto  # type: ignore[method-assign]
        if read1 is not None:
            storage.RangedFile.read1 = read1  # type: ignore[method-assign]


def _parquet_labels(path: Path, wanted: set[int]) -> tuple[np.ndarray, dict[int, float]]:
    """Byte labels of a parquet file and each row group's share of rows in ``wanted`` episodes."""
    labels = np.full(path.stat().st_size, _OTHER, dtype=np.int32)
    parquet = pq.ParquetFile(path)
    metadata = parquet.metadata
    footer = metadata.serialized_size + 8
    labels[-footer:] = _FOOTER
    shares = {}
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            offsets = [o for o in (chunk.dictionary_page_offset, chunk.data_page_offset) if o]
            labels[min(offsets) : min(offsets) + chunk.total_compressed_size] = group
        episodes = parquet.read_row_group(group, columns=["episode_index"])["episode_index"]
        mask = pc.is_in(episodes, value_set=pc.cast(list(wanted) or [-1], episodes.type))
        shares[group] = pc.sum(mask).as_py() / max(len(episodes), 1) if len(episodes) else 0.0
    return labels, shares


def _mp4_labels(path: Path, frames: set[int], fps: int) -> np.ndarray:
    """Byte labels of an mp4: packets of ``frames`` (presentation indices), other packets, the rest."""
    labels = np.full(path.stat().st_size, _OTHER, dtype=np.int32)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        start = stream.start_time or 0
        for packet in container.demux(stream):  # by presentation time: decode times lag behind with B-frames
            if packet.pts is None or packet.pos is None or packet.pos < 0:
                continue
            index = round(float((packet.pts - start) * stream.time_base) * fps)
            label = _TASK_PACKET if index in frames else _OTHER_PACKET
            labels[packet.pos : packet.pos + packet.size] = label
    return labels


def _coverage(size: int, ranges: Iterable[tuple[int, int]]) -> np.ndarray:
    counts = np.zeros(size + 1, dtype=np.int32)
    for start, end in ranges:
        counts[start] += 1
        counts[min(end, size)] -= 1
    return np.cumsum(counts[:-1])


def task_breakdown(
    log: Log, root_url: str, local: Path, episodes: list[SourceEpisode], fps: int
) -> dict[str, int]:
    """The bytes one task downloaded, by label (see the module docstring), from its recorded ``log``."""
    totals: dict[str, int] = {}
    wanted = {e.episode_index for e in episodes}
    for url, fetches in log.fetches.items():
        relative = posixpath.relpath(url, root_url.rstrip("/"))
        path = local / relative
        if relative.endswith(".parquet"):
            labels, shares = _parquet_labels(path, wanted)
        else:
            frames = {
                round(span.from_timestamp * fps) + i
                for e in episodes
                for span in e.videos.values()
                if span.file == relative
                for i in range(e.length)
            }
            labels, shares = _mp4_labels(path, frames, fps), {}
        fetched = _coverage(len(labels), fetches)
        read = _coverage(len(labels), log.reads.get(url, []))
        once = fetched > 0
        _add(totals, "fetched_twice", int((fetched[once] - 1).sum()))
        _add(totals, "read_ahead_unused", int((once & (read == 0)).sum()))
        held = labels[once]
        names = {_FOOTER: "parquet_footer", _TASK_PACKET: "packets_task", _OTHER_PACKET: "packets_other"}
        for label, name in names.items():
            _add(totals, name, int((held == label).sum()))
        if relative.endswith(".parquet"):
            _add(totals, "parquet_other", int((held == _OTHER).sum()))
        else:
            _add(totals, "mp4_boxes", int((held == _OTHER).sum()))
        for group, share in shares.items():
            in_group = int((held == group).sum())
            _add(totals, "parquet_rows_needed", round(in_group * share))
            _add(totals, "parquet_rows_other", in_group - round(in_group * share))
    return totals


def _add(totals: dict[str, int], name: str, value: int) -> None:
    totals[name] = totals.get(name, 0) + value
