"""Arrow IPC files read with a bound: rows and inflated bytes checked before anything is decompressed.

Arrow has no cap on decompression: a few hundred KB of zstd in a ``rows.arrow`` member can claim
gigabytes. But an IPC file says what it will allocate before it does: each record batch's metadata (a
flatbuffer) lists its row count and its body buffers, and each compressed buffer starts with its
uncompressed length (int64, little-endian; -1 when stored uncompressed) — Arrow's ``Message.fbs`` and
``BodyCompression``. pyarrow does not expose those numbers, so the few flatbuffer fields needed are read
here by hand (bounds-checked: a malformed flatbuffer is an error, never a read outside the buffer).

The batches checked are the batches decoded: the file is read as the IPC *stream* it contains (after the
8-byte magic, up to the end-of-stream marker before the footer), so a footer pointing at other bytes
cannot smuggle in an unchecked batch.
"""

from __future__ import annotations

import struct

import pyarrow as pa
import pyarrow.ipc as ipc

MAGIC = b"ARROW1\x00\x00"  # 6 bytes of magic, padded to 8, then the stream
_RECORD_BATCH_SLOTS = {"length": 0, "buffers": 2, "compression": 3}  # fields of flatbuf RecordBatch
_MESSAGE_HEADER_SLOT = 2  # Message.header (a RecordBatch or DictionaryBatch table)
_DICTIONARY_DATA_SLOT = 1  # DictionaryBatch.data (a RecordBatch table)


class IpcBoundError(ValueError):
    """The file is malformed or would inflate past its bound (message without a location)."""


def read_bounded(data: bytes | memoryview, max_rows: int, max_bytes: int) -> pa.Table:
    """The table in an Arrow IPC file, if it holds at most ``max_rows`` rows and its buffers inflate to at
    most ``max_bytes``; :class:`IpcBoundError` (before any decompression) otherwise. Arrow's own errors
    (``pa.ArrowException``, ``OSError`` from a codec) pass through."""
    buffer = pa.py_buffer(data)
    if buffer.size < len(MAGIC) or buffer[: len(MAGIC)].to_pybytes() != MAGIC:
        raise IpcBoundError("not an Arrow IPC file (no ARROW1 magic)")
    stream = buffer[len(MAGIC) :]
    rows, inflated = _stream_totals(stream)
    if rows > max_rows:
        raise IpcBoundError(f"record batches hold {rows} rows; expected at most {max_rows}")
    if inflated > max_bytes:
        raise IpcBoundError(f"buffers inflate to {inflated} bytes; expected at most {max_bytes}")
    return ipc.open_stream(stream).read_all()


def _stream_totals(stream: pa.Buffer) -> tuple[int, int]:
    """(rows of the record batches, bytes their bodies inflate to) without decompressing."""
    reader = ipc.MessageReader.open_stream(stream)
    rows = inflated = 0
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            return rows, inflated
        if message.type not in ("record batch", "dictionary batch"):
            continue
        meta = message.metadata.to_pybytes()
        body = message.body.to_pybytes() if message.body is not None else b""
        batch = _table_field(meta, _root(meta), _MESSAGE_HEADER_SLOT)
        if message.type == "dictionary batch":
            batch = _table_field(meta, batch, _DICTIONARY_DATA_SLOT)
        else:
            length = _int64_field(meta, batch, _RECORD_BATCH_SLOTS["length"])
            if length < 0:
                raise IpcBoundError(f"a record batch of {length} rows")
            rows += length
        inflated += _body_bytes(meta, batch, body)


def _body_bytes(meta: bytes, batch: int, body: bytes) -> int:
    """Bytes a batch's buffers take once decompressed (as stored when uncompressed)."""
    compressed = _field(meta, batch, _RECORD_BATCH_SLOTS["compression"]) is not None
    vector = _vector(meta, batch, _RECORD_BATCH_SLOTS["buffers"])
    if vector is None:
        return 0
    count, start = vector
    total = 0
    for i in range(count):
        offset, length = _unpack("<qq", meta, start + 16 * i)  # struct Buffer { offset; length }
        if offset < 0 or length < 0 or offset + length > len(body):
            raise IpcBoundError(f"buffer {i} at {offset}+{length} lies outside the {len(body)}-byte body")
        if compressed and length >= 8:
            (claimed,) = _unpack("<q", body, offset)
            total += max(claimed, length - 8)  # -1: stored uncompressed after the prefix
        else:
            total += length
    return total


# --------------------------------------------------------------------------- flatbuffer reading


def _unpack(fmt: str, data: bytes, position: int) -> tuple[int, ...]:
    if position < 0 or position + struct.calcsize(fmt) > len(data):
        raise IpcBoundError(f"flatbuffer offset {position} outside its {len(data)} bytes")
    return struct.unpack_from(fmt, data, position)


def _root(meta: bytes) -> int:
    return _unpack("<I", meta, 0)[0]


def _field(meta: bytes, table: int, slot: int) -> int | None:
    """Position of a table's field ``slot``, or None when absent (flatbuffers: vtable at table - soffset)."""
    vtable = table - _unpack("<i", meta, table)[0]
    vtable_size = _unpack("<H", meta, vtable)[0]
    entry = 4 + 2 * slot
    if entry + 2 > vtable_size:
        return None
    offset = _unpack("<H", meta, vtable + entry)[0]
    return table + offset if offset else None


def _table_field(meta: bytes, table: int, slot: int) -> int:
    position = _field(meta, table, slot)
    if position is None:
        raise IpcBoundError(f"flatbuffer table at {table} lacks field {slot}")
    return position + _unpack("<I", meta, position)[0]


def _int64_field(meta: bytes, table: int, slot: int) -> int:
    position = _field(meta, table, slot)
    return 0 if position is None else _unpack("<q", meta, position)[0]


def _vector(meta: bytes, table: int, slot: int) -> tuple[int, int] | None:
    """(element count, position of the first element) of a vector field, or None when absent."""
    position = _field(meta, table, slot)
    if position is None:
        return None
    start = position + _unpack("<I", meta, position)[0]
    return _unpack("<I", meta, start)[0], start + 4
