"""Decoding a large import in a child process, so that DuckDB's writer has the GIL to itself.

DuckDB runs an INSERT without the GIL, but takes it back between the tasks of a statement
(and to fetch each record batch of a stream). While the decoding thread runs Python code, each
of those waits up to the interpreter's switch interval (5 ms): measured, a writer that needs
13 µs per event alone needed 50-350 µs with a busy Python thread beside it
(docs/benchmarks.md, "Ingest"). A child process has a GIL of its own: it reads the files,
decodes, checks and redacts the records exactly as the in-process path does
(:func:`decode_chunk`), and sends each chunk's table to the parent as an Arrow IPC stream over a
pipe; the parent's only work per chunk is to read it.

The child is ``python -m kubetrail.decoder_child``: it takes the job as JSON on its command
line, inherits standard input (so ``-`` works), and writes messages on the pipe whose file
descriptor the job names: each message is a 16-byte header (two lengths), a pickle (the kind,
the chunk's metadata and rejections) and the table's Arrow IPC bytes. The parent reads those
bytes straight into one Arrow buffer, which the table then uses without a copy: through
:class:`multiprocessing.connection.Connection` it paid a new buffer per pipe read and a growing
copy, about 2 s of CPU per million events (docs/benchmarks.md, "Ingest"). Back-pressure is the
pipe's: the child blocks while the parent's queue is full, so at most a few chunks are in
flight. The parent trusts the pickles because it started the child itself.

A failure in the child is sent as a message and raised in the parent as the same kind of error
(:class:`~kubetrail.errors.SourceError` for a file that cannot be read); if the child dies
without a word, the parent raises :class:`DecoderProcessError` with its exit status.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from .errors import KubetrailError, SourceError
from .model.decode import Rejection, decode_records
from .model.gcpause import gc_paused
from .model.normalize import normalize
from .model.rawbatch import raw_columns
from .sources.containerlog import UnwrapStats
from .sources.files import Record, iter_records, source_name

#: A chunk ends after this many bytes of records even before its count: memory stays bounded
#: for large events too (4,096 events of 32 KB made a 128 MB chunk, and an import peaked at
#: 1.5 GB).
CHUNK_BYTES = 8 * 1024 * 1024
#: A chunk whose events average more than this takes the reference path: DuckDB's JSON reader
#: needs several times a vector's bytes of memory, more than the import's limit allows for
#: large events (demo events are 1.2 KB, real ones mostly smaller).
FAST_EVENT_BYTES = 2048


def path_chunks(
    paths: Sequence[str | Path], format_in: str, max_records: int, stats: UnwrapStats
) -> Iterator[tuple[str, list[Record]]]:
    """The records of ``paths`` in order, as ``(source name, chunk)`` (see :func:`chunked`)."""
    for path in paths:
        records = iter_records(path, format_in, stats)
        name = source_name(path)
        for chunk in chunked(records, max_records):
            yield name, chunk


def chunked(records: Iterator[Record], max_records: int) -> Iterator[list[Record]]:
    """``records`` in lists of at most ``max_records`` records and about :data:`CHUNK_BYTES`."""
    chunk: list[Record] = []
    size = 0
    for record in records:
        chunk.append(record)
        size += len(record[1])
        if len(chunk) >= max_records or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


#: The child collects reference cycles once per this many chunks, with the collector off in
#: between. Reading and chunking the records outside :func:`gc_paused` still set off about a
#: thousand young-generation collections per million events, each walking the chunk's live
#: objects: 7 % of the child's CPU (2.9 against 2.7 s per 300,000 demo events, three pairs).
#: The child makes almost no cycles (a caught exception's, on a rejection path), so a full
#: collection now and then bounds them at no measurable cost.
_COLLECT_EVERY = 64

#: How long a child that sent everything gets to exit before it is killed.
_EXIT_SECONDS = 10.0


class DecoderProcessError(KubetrailError):
    """The decoding child process failed without saying why (killed, out of memory)."""


@dataclass
class DecodedTable:
    """One decoded chunk: its table (raw-batch or event schema) and what it refused.

    ``dropped`` counts the events a collector-side policy chose not to keep (in-process only).
    """

    source: str
    table: pa.Table
    rejections: list[Rejection]
    records: int
    dropped: int = 0


def decode_chunk(
    source: str,
    records: list[Record],
    cluster: str,
    redact: bool,
    fast_event_bytes: int = FAST_EVENT_BYTES,
) -> DecodedTable:
    """Decode, check and redact one chunk for the fast path (in-process or in the child).

    The table has :data:`~kubetrail.model.rawbatch.RAW_SCHEMA`, or the event schema for a
    chunk whose events average more than ``fast_event_bytes``: the reference path builds
    those (see :data:`FAST_EVENT_BYTES`).
    """
    with gc_paused():
        chunk = decode_records(records, source, redact=redact)
        if sum(map(len, chunk.raws)) <= fast_event_bytes * len(chunk.raws):
            batch = raw_columns(chunk)
            return DecodedTable(source, batch.table, batch.rejections, batch.records)
        normalized = normalize(chunk, cluster=cluster, source=source, batch_id="")
    return DecodedTable(source, normalized.table, normalized.rejections, normalized.records)


def decoded_in_child(
    paths: Sequence[str | Path],
    *,
    cluster: str,
    redact: bool,
    format_in: str,
    chunk_records: int,
    stats: UnwrapStats,
) -> Iterator[DecodedTable]:
    """The decoded chunks of ``paths``, decoded by a child process, in input order.

    ``stats`` receives the child's count of container-log lines that were not audit events
    once every chunk was read. Closing the iterator early stops the child.
    """
    read_fd, write_fd = os.pipe()
    job = {
        "paths": [str(p) for p in paths],
        "cluster": cluster,
        "redact": redact,
        "format_in": format_in,
        "chunk_records": chunk_records,
        "fd": write_fd,
    }
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "kubetrail.decoder_child", json.dumps(job)],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
        )
    finally:
        os.close(write_fd)
    finished = False
    try:
        yield from _receive(read_fd, stats)
        finished = True
    finally:
        os.close(read_fd)
        if finished:
            with suppress(subprocess.TimeoutExpired):
                child.wait(timeout=_EXIT_SECONDS)  # it has sent everything and is exiting
        if child.poll() is None:
            child.kill()
        child.wait()


def _receive(fd: int, stats: UnwrapStats) -> Iterator[DecodedTable]:
    while True:
        message, payload = _read_message(fd)
        kind = message[0]
        if kind == "chunk":
            _, source, records, rejections = message
            table = pa.ipc.open_stream(payload).read_all()
            yield DecodedTable(source, table, rejections, records)
        elif kind == "done":
            stats.not_audit += message[1]
            return
        elif kind == "source_error":
            raise SourceError(message[1])
        else:
            raise DecoderProcessError(f"the decoding process failed: {message[1]}")


#: A message's header: the pickle's length and the payload's length.
_HEADER = struct.Struct("<QQ")


def _write_message(fd: int, message: tuple[object, ...], payload: pa.Buffer | None = None) -> None:
    pickled = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    size = payload.size if payload is not None else 0
    _write_all(fd, _HEADER.pack(len(pickled), size) + pickled)
    if payload is not None:
        _write_all(fd, memoryview(payload))


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_message(fd: int) -> tuple[tuple[object, ...], pa.Buffer]:
    header = bytearray(_HEADER.size)
    _read_into(fd, memoryview(header))
    pickled_size, payload_size = _HEADER.unpack(header)
    pickled = bytearray(pickled_size)
    _read_into(fd, memoryview(pickled))
    payload = pa.allocate_buffer(payload_size)
    _read_into(fd, memoryview(payload))
    return pickle.loads(pickled), payload


def _read_into(fd: int, view: memoryview) -> None:
    """Fill ``view`` from ``fd``; the child's end of the pipe closing first is its failure."""
    while view:
        n = os.readv(fd, [view])
        if n == 0:
            raise DecoderProcessError("the decoding process ended without finishing")
        view = view[n:]


def run_child(job: dict[str, object]) -> None:
    """The child's side (:mod:`kubetrail.decoder_child`): decode and send every chunk."""
    fd = int(job["fd"])  # type: ignore[call-overload]
    stats = UnwrapStats()
    try:
        size = int(job["chunk_records"])  # type: ignore[call-overload]
        paths: list[str] = job["paths"]  # type: ignore[assignment]
        chunks = path_chunks(paths, str(job["format_in"]), size, stats)
        with gc_paused():  # collecting every so many chunks instead: see _COLLECT_EVERY
            for sent, (name, chunk) in enumerate(chunks, start=1):
                decoded = decode_chunk(name, chunk, str(job["cluster"]), bool(job["redact"]))
                message = ("chunk", name, decoded.records, decoded.rejections)
                _write_message(fd, message, _ipc_bytes(decoded.table))
                if sent % _COLLECT_EVERY == 0:
                    gc.collect()
        _write_message(fd, ("done", stats.not_audit))
    except SourceError as exc:
        _write_message(fd, ("source_error", str(exc)))
    except BrokenPipeError:
        pass  # the parent stopped reading (it failed, or was interrupted)
    except Exception as exc:  # reported to the parent, which raises it
        _write_message(fd, ("error", f"{type(exc).__name__}: {exc}"))
    finally:
        os.close(fd)


def _ipc_bytes(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()
