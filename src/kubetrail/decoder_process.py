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
descriptor the job names, through :class:`multiprocessing.connection.Connection` (pickled
metadata and rejections, then the table's bytes). Back-pressure is the pipe's: the child blocks
while the parent's queue is full, so at most a few chunks are in flight. The parent trusts the
pickles because it started the child itself.

A failure in the child is sent as a message and raised in the parent as the same kind of error
(:class:`~kubetrail.errors.SourceError` for a file that cannot be read); if the child dies
without a word, the parent raises :class:`DecoderProcessError` with its exit status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
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
    conn = Connection(read_fd, writable=False)
    finished = False
    try:
        yield from _receive(conn, stats)
        finished = True
    finally:
        conn.close()
        if finished:
            with suppress(subprocess.TimeoutExpired):
                child.wait(timeout=_EXIT_SECONDS)  # it has sent everything and is exiting
        if child.poll() is None:
            child.kill()
        child.wait()


def _receive(conn: Connection, stats: UnwrapStats) -> Iterator[DecodedTable]:
    while True:
        try:
            message = conn.recv()
        except EOFError:
            raise DecoderProcessError("the decoding process ended without finishing") from None
        kind = message[0]
        if kind == "chunk":
            _, source, records, rejections = message
            data = conn.recv_bytes()
            table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
            yield DecodedTable(source, table, rejections, records)
        elif kind == "done":
            stats.not_audit += message[1]
            return
        elif kind == "source_error":
            raise SourceError(message[1])
        else:
            raise DecoderProcessError(f"the decoding process failed: {message[1]}")


def run_child(job: dict[str, object]) -> None:
    """The child's side (:mod:`kubetrail.decoder_child`): decode and send every chunk."""
    conn = Connection(int(job["fd"]), readable=False)  # type: ignore[call-overload]
    stats = UnwrapStats()
    try:
        size = int(job["chunk_records"])  # type: ignore[call-overload]
        paths: list[str] = job["paths"]  # type: ignore[assignment]
        for name, chunk in path_chunks(paths, str(job["format_in"]), size, stats):
            decoded = decode_chunk(name, chunk, str(job["cluster"]), bool(job["redact"]))
            conn.send(("chunk", name, decoded.records, decoded.rejections))
            conn.send_bytes(_ipc_bytes(decoded.table))
        conn.send(("done", stats.not_audit))
    except SourceError as exc:
        conn.send(("source_error", str(exc)))
    except BrokenPipeError:
        pass  # the parent stopped reading (it failed, or was interrupted)
    except Exception as exc:  # reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _ipc_bytes(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()
