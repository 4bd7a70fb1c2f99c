"""The write-ahead spool: acknowledged webhook batches on disk before they reach the store.

A batch is answered 200 once its frame is in a spool segment and ``fdatasync`` returned; the
committer (:mod:`.spool_writer`) moves it into the store later, in large transactions, and a
segment is deleted when every batch in it is committed. On start, the segments left by a crash
are read back and committed again (the store deduplicates, and batches it already has are
skipped by id), so the spool is part of the store: it lives next to the store file, in
``<db>.spool/``, and must be on the same volume.

Segment files are ``<sequence>.spool``, a sequence of frames::

    b"KTSP" | u32 payload length | u32 CRC-32 of the payload | payload
    payload = u32 meta length | meta (JSON: cluster, source, batch_id) | Arrow IPC stream

The batch is stored already normalised and redacted: a Secret value never reaches the spool.
A frame cut short by a crash (or with a bad CRC) ends the segment: it was never acknowledged,
because the answer waits for the ``fdatasync`` that follows the whole frame.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa

from ..store.base import BatchMeta

log = logging.getLogger("kubetrail.spool")

MAGIC = b"KTSP"
_HEADER = struct.Struct("<4sII")
_META_LEN = struct.Struct("<I")
#: A new segment is started past this size, so committed ones can be deleted.
SEGMENT_BYTES = 64 * 1024 * 1024


def spool_dir(db_base: str | Path) -> Path:
    """The spool directory of a store file: ``<db>.spool``."""
    return Path(f"{db_base}.spool")


def encode_frame(table: pa.Table, meta: BatchMeta) -> bytes:
    """One batch as a spool frame (header, CRC, meta and the table as an Arrow IPC stream)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    meta_json = msgspec.json.encode(
        {"cluster": meta.cluster, "source": meta.source, "batch_id": meta.batch_id}
    )
    payload = _META_LEN.pack(len(meta_json)) + meta_json + sink.getvalue().to_pybytes()
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def _decode_payload(payload: bytes) -> tuple[pa.Table, BatchMeta]:
    (meta_len,) = _META_LEN.unpack_from(payload)
    start = _META_LEN.size
    meta: dict[str, Any] = msgspec.json.decode(payload[start : start + meta_len])
    table = pa.ipc.open_stream(payload[start + meta_len :]).read_all()
    return table, BatchMeta(meta["cluster"], meta["source"], meta["batch_id"])


def read_segment(path: Path) -> Iterator[tuple[pa.Table, BatchMeta]]:
    """The whole frames of a segment, in order; stops at the first torn or corrupt frame."""
    data = path.read_bytes()
    offset = 0
    while offset + _HEADER.size <= len(data):
        magic, length, crc = _HEADER.unpack_from(data, offset)
        payload = data[offset + _HEADER.size : offset + _HEADER.size + length]
        if magic != MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
            log.warning("%s: frame at byte %d is incomplete or corrupt; ignored", path, offset)
            return
        yield _decode_payload(payload)
        offset += _HEADER.size + length
    if offset != len(data):
        log.warning("%s: %d bytes of a torn frame at the end; ignored", path, len(data) - offset)


@dataclass
class _Segment:
    number: int
    fd: int | None
    size: int = 0
    #: Frames appended and not yet committed to the store.
    pending: int = 0


class Spool:
    """Append-only segment files with one ``fdatasync`` per group of frames.

    Used by two threads: :meth:`append` from the appender, :meth:`release` from the committer;
    the caller serialises them with its own lock.

    Args:
        directory: the spool directory (created if missing).
        segment_bytes: size past which the next append starts a new segment.
    """

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self.leftover = sorted(directory.glob("*.spool"))
        last = max((int(p.stem) for p in self.leftover), default=0)
        self._segments: dict[int, _Segment] = {}
        self._active: _Segment | None = None
        self._next = last + 1

    def replay(self) -> Iterator[tuple[pa.Table, BatchMeta]]:
        """The batches of the segments left from the last run (a crash), oldest first."""
        for path in self.leftover:
            yield from read_segment(path)

    def discard_leftover(self) -> None:
        """Delete the replayed segments, once their batches are committed to the store."""
        for path in self.leftover:
            path.unlink(missing_ok=True)
        if self.leftover:
            _fsync_dir(self.directory)
        self.leftover = []

    def append(self, frames: list[bytes]) -> int:
        """Write frames to the active segment and make them durable; return the segment number."""
        segment = self._writable()
        assert segment.fd is not None
        data = b"".join(frames)
        view = memoryview(data)
        try:
            while view:
                written = os.write(segment.fd, view)
                view = view[written:]
            os.fdatasync(segment.fd)
        except OSError:
            # Part of the frames may be in the file: a replay stops at the first torn frame,
            # so nothing may follow them. The segment is finished here (its earlier frames
            # were synced and stay); the next append starts a new one.
            self._retire(segment)
            raise
        segment.size += len(data)
        segment.pending += len(frames)
        return segment.number

    def release(self, number: int, frames: int = 1) -> None:
        """Mark frames of a segment committed; a finished, full segment is deleted."""
        segment = self._segments[number]
        segment.pending -= frames
        if segment.pending == 0 and segment is not self._active:
            self._delete(segment)

    def close(self) -> None:
        """Close the active segment; delete it if everything in it is committed."""
        for segment in list(self._segments.values()):
            if segment.pending == 0:
                self._delete(segment)
            elif segment.fd is not None:
                os.close(segment.fd)
                segment.fd = None
        self._active = None

    def _writable(self) -> _Segment:
        active = self._active
        if active is not None and active.size < self.segment_bytes:
            return active
        if active is not None:
            self._retire(active)
        path = self.directory / f"{self._next:012d}.spool"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        # The new name must be durable before a frame in it is acknowledged.
        _fsync_dir(self.directory)
        segment = _Segment(self._next, fd)
        self._segments[segment.number] = segment
        self._active = segment
        self._next += 1
        return segment

    def _retire(self, segment: _Segment) -> None:
        if segment.fd is not None:
            with contextlib.suppress(OSError):
                os.close(segment.fd)
            segment.fd = None
        if segment is self._active:
            self._active = None
        if segment.pending == 0:
            self._delete(segment)

    def _delete(self, segment: _Segment) -> None:
        if segment.fd is not None:
            os.close(segment.fd)
            segment.fd = None
        (self.directory / f"{segment.number:012d}.spool").unlink(missing_ok=True)
        self._segments.pop(segment.number, None)
        if segment is self._active:
            self._active = None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
