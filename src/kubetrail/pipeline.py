"""The ingest pipeline: records from a source → decode (+ redact) → normalise → store.

Records are decoded in chunks (bounded memory) and stored in batches (one transaction each,
the unit of atomicity). The calling thread decodes; a writer thread streams the chunks of a
batch into the store (DuckDB releases the GIL), so the two cores of a small machine both work.
A queue of one chunk between them keeps memory constant whatever the input size.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from . import decoder_process
from .decoder_process import DecodedTable, decode_chunk, path_chunks
from .model.decode import DecodedChunk, decode_records
from .model.gcpause import gc_paused
from .model.normalize import normalize, normalize_records
from .quarantine import Quarantine
from .sources.containerlog import UnwrapStats
from .sources.files import Record
from .store.base import BatchMeta, Store, WriteResult

log = logging.getLogger("kubetrail.pipeline")

#: Records decoded at a time: bounds the memory of one chunk (about 20 MB while decoding).
CHUNK_RECORDS = 4_096
#: Records per stored batch (one transaction). Large transactions commit about twice as fast as
#: 20,000-record ones, but DuckDB keeps the Arrow buffers of a transaction's inserts alive until
#: it commits (about 1.8 KB per 1.2 KB event): 32,768 keeps that near 60 MB and an import of a
#: million events under 500 MB resident (49,152 reached 514 MB). Measured in docs/benchmarks.md.
BATCH_RECORDS = 32_768
#: Records per batch on the fast path (:mod:`kubetrail.model.rawbatch`): one DuckDB row group.
#: A transaction of a full row group is written straight to the file, compressed, instead of
#: through the write-ahead log and again at the checkpoint; the fast path's batches hold only
#: the raw JSON and a few columns, so a larger batch fits the same memory. Measured in
#: docs/benchmarks.md ("Ingest").
FAST_BATCH_RECORDS = 122_880
#: A batch also ends once its tables hold this many bytes, so that large events (bodies of
#: tens of KB) keep memory bounded too: 1.2 KB events never reach these before the counts.
BATCH_BYTES = 64 * 1024 * 1024
FAST_BATCH_BYTES = 192 * 1024 * 1024
#: A chunk whose events average more than this takes the reference path (see
#: :data:`kubetrail.decoder_process.FAST_EVENT_BYTES`).
FAST_EVENT_BYTES = decoder_process.FAST_EVENT_BYTES
#: Files at least this large in all (on the fast path) are decoded by a child process, which
#: leaves the GIL to DuckDB's writer (:mod:`kubetrail.decoder_process`); smaller imports do
#: not pay the child's start (about 0.3 s).
CHILD_DECODE_BYTES = 64 * 1024 * 1024
#: Decoded chunks queued for the writer on the fast path (about 5 MB each).
FAST_QUEUE_CHUNKS = 2


@dataclass
class IngestSummary:
    """What an ingest did.

    ``read == stored + duplicates + rejected + dropped_by_policy`` always holds; ``not_audit``
    counts the container-log lines that were not audit events (the API server's own log),
    which are outside ``read``.
    """

    read: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    quarantine: str | None = None
    seconds: float = 0.0
    #: Events a collector-side audit policy chose not to keep (intentional, not errors).
    dropped_by_policy: int = 0
    #: Container-log lines that were not audit events (skipped on purpose, not errors).
    not_audit: int = 0

    def as_dict(self) -> dict[str, object]:
        """The JSON shape of ``kubetrail ingest --format json``."""
        return {
            "read": self.read,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "quarantine": self.quarantine,
            "rejected_by_reason": dict(self.rejected_by_reason.most_common()),
            "dropped_by_policy": self.dropped_by_policy,
            "not_audit": self.not_audit,
            "seconds": round(self.seconds, 3),
        }


#: A decoded chunk, whichever path or process decoded it.
_Chunk = DecodedTable


class EventTransform(Protocol):
    """A transform of decoded events before storage (a collector-side audit policy)."""

    def apply_chunk(self, chunk: DecodedChunk) -> int:
        """Change the chunk in place; return how many events it dropped on purpose."""
        ...


class BatchDetector(Protocol):
    """Runs detections on each committed batch (:class:`kubetrail.detect.detector.Detector`)."""

    def on_batch(self, table: pa.Table) -> object:
        """Look at a committed batch (its alerts are stored by the detector)."""
        ...


ProgressCallback = Callable[[int], None]
#: A store's fast-path write (``DuckDBStore.write_raw_batches``): raw or event tables.
RawWriter = Callable[[Iterable[pa.Table], BatchMeta], WriteResult]


def ingest_paths(
    store: Store,
    paths: Sequence[str | Path],
    cluster: str = "default",
    *,
    quarantine: Quarantine | None = None,
    redact: bool = True,
    progress: ProgressCallback | None = None,
    chunk_records: int = CHUNK_RECORDS,
    batch_records: int | None = None,
    transform: EventTransform | None = None,
    format_in: str = "auto",
    detector: BatchDetector | None = None,
    fast: bool = True,
) -> IngestSummary:
    """Ingest files (or ``-`` for stdin) into a store.

    Args:
        store: where events go.
        paths: files to read, in order; ``-`` reads standard input.
        cluster: the cluster the events belong to. Default ``"default"``.
        quarantine: where refused records go; ``None`` counts them only.
        redact: remove Secret values before storage. Default ``True``.
        progress: called with the number of records committed after each batch.
        chunk_records: records decoded at a time (memory bound).
        batch_records: records per stored batch (unit of atomicity). A batch never spans two
            files. Default :data:`BATCH_RECORDS`, :data:`FAST_BATCH_RECORDS` on the fast path.
        transform: applied to decoded events before storage, e.g. a collector-side audit
            policy (:class:`kubetrail.policy.transform.PolicyTransform`).
        format_in: ``auto`` (default: detected per file), ``jsonl``, ``cri`` or ``docker``
            (container logs, see :mod:`kubetrail.sources.containerlog`).
        detector: runs the stateless detection rules on each batch once it is committed.
        fast: let a store that can (DuckDB; ClickHouse for imports decoded in the child)
            extract the columns from the raw JSON itself (:mod:`kubetrail.model.rawbatch`);
            the same rows, faster. Without a transform and a detector only, which need the
            whole table in Python. Default ``True``.

    Returns:
        The counts of what was read, stored, skipped as duplicate, refused and skipped as not
        an audit event.

    Raises:
        SourceError: a path cannot be read (batches committed before stay stored).
        StoreError: the store failed; batches committed before stay stored.
    """

    unwrapped = UnwrapStats()
    if batch_records is None:
        fast_path = fast and transform is None and detector is None
        use_fast = fast_path and _raw_writer(store) is not None
        batch_records = FAST_BATCH_RECORDS if use_fast else BATCH_RECORDS
    batch_size = batch_records

    chunk_size = min(chunk_records, batch_size)
    fast_path = fast and transform is None and detector is None
    raw_writer = _raw_writer(store, in_child=True) if fast_path else None
    if raw_writer is not None and _decode_in_child(paths):
        decoded = decoder_process.decoded_in_child(
            paths,
            cluster=cluster,
            redact=redact,
            format_in=format_in,
            chunk_records=chunk_size,
            stats=unwrapped,
        )
        summary = _store_chunks(
            store, decoded, cluster, quarantine, progress, batch_records, None, raw_writer
        )
    else:
        summary = ingest_batches(
            store,
            path_chunks(paths, format_in, chunk_size, unwrapped),
            cluster,
            quarantine=quarantine,
            redact=redact,
            progress=progress,
            batch_records=batch_records,
            transform=transform,
            detector=detector,
            fast=fast,
        )
    summary.not_audit = unwrapped.not_audit
    return summary


def _decode_in_child(paths: Sequence[str | Path]) -> bool:
    """Whether an import is large enough to decode in a child process (files only)."""
    if any(str(p) == "-" for p in paths):
        return False
    try:
        return sum(Path(p).stat().st_size for p in paths) >= CHILD_DECODE_BYTES
    except OSError:
        return False  # the in-process path reports the unreadable file


def ingest_batches(
    store: Store,
    chunks: Iterable[tuple[str, list[Record]]],
    cluster: str,
    *,
    quarantine: Quarantine | None = None,
    redact: bool = True,
    progress: ProgressCallback | None = None,
    batch_records: int = BATCH_RECORDS,
    transform: EventTransform | None = None,
    detector: BatchDetector | None = None,
    fast: bool = True,
) -> IngestSummary:
    """Decode ``(source, records)`` chunks and store them in batches; see :func:`ingest_paths`.

    The calling thread decodes; a writer thread streams the decoded chunks into the store,
    one transaction per batch of up to ``batch_records`` records of one source.
    """
    raw_writer = _raw_writer(store) if fast and transform is None and detector is None else None

    def decoded() -> Iterator[_Chunk]:
        for source, records in chunks:
            if raw_writer is not None:
                yield _decode_raw(source, records, cluster, redact)
            else:
                yield _decode(source, records, cluster, redact, transform)

    return _store_chunks(
        store, decoded(), cluster, quarantine, progress, batch_records, detector, raw_writer
    )


def _store_chunks(
    store: Store,
    chunks: Iterator[_Chunk],
    cluster: str,
    quarantine: Quarantine | None,
    progress: ProgressCallback | None,
    batch_records: int,
    detector: BatchDetector | None,
    raw_writer: RawWriter | None,
) -> IngestSummary:
    """Store decoded chunks in batches: the calling thread pulls ``chunks`` (decoding them, or
    reading them from the decoding process), a writer thread streams them into the store."""
    summary = IngestSummary(quarantine=str(quarantine.path) if quarantine else None)
    started = time.perf_counter()
    failure: list[BaseException] = []
    detections = _Detections(detector) if detector is not None else None
    # The fast path's chunks are small (the raw JSON and a few columns) and DuckDB inserts
    # several at once: a deeper queue lets decoding run on while DuckDB works.
    # A store may ask for a deeper queue (ClickHouse: ``ClickHouseStore.write_queue_chunks``).
    depth = getattr(store, "write_queue_chunks", FAST_QUEUE_CHUNKS if raw_writer else 1)
    pending: queue.Queue[_Chunk | None] = queue.Queue(maxsize=depth)

    def write_loop() -> None:
        limit = FAST_BATCH_BYTES if raw_writer is not None else BATCH_BYTES
        feed = _BatchFeed(pending, batch_records, limit)
        while not feed.finished:
            if failure:
                feed.drain()
                return
            try:
                _commit_batch(
                    store, feed, cluster, summary, quarantine, progress, detections, raw_writer
                )
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)

    writer = threading.Thread(target=write_loop, name="kubetrail-writer", daemon=True)
    writer.start()
    try:
        for chunk in chunks:
            if failure:
                break
            pending.put(chunk)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        pending.put(None)
        writer.join()
        if detections is not None:
            detections.close()
        summary.seconds = time.perf_counter() - started
    if failure:
        raise failure[0]
    return summary


class _Detections:
    """Runs a detector on committed batches in a thread of its own, one batch queued.

    The engine works in its own DuckDB connection (which releases the GIL), so it overlaps with
    decoding and with the next batch's insert instead of adding to the writer's time.
    """

    def __init__(self, detector: BatchDetector) -> None:
        self._detector = detector
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name="kubetrail-detect", daemon=True)
        self._thread.start()

    def on_batch(self, table: pa.Table) -> None:
        self._queue.put(table)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (table := self._queue.get()) is not None:
            try:
                self._detector.on_batch(table)
            except Exception as exc:  # stored batches stay stored; detections are best effort
                log.error("detections failed on a batch: %s", exc)


def _raw_writer(store: Store, *, in_child: bool = False) -> RawWriter | None:
    """The store's fast-path writer, when it has one (see :mod:`kubetrail.model.rawbatch`).

    A store may take raw batches only from the decoding child (ClickHouse:
    ``raw_batches_in_process = False``).
    """
    writer = getattr(store, "write_raw_batches", None)
    if not in_child and not getattr(store, "raw_batches_in_process", True):
        return None
    return writer if callable(writer) else None


def _decode_raw(source: str, records: list[Record], cluster: str, redact: bool) -> _Chunk:
    return decode_chunk(source, records, cluster, redact, FAST_EVENT_BYTES)


def _decode(
    source: str,
    records: list[Record],
    cluster: str,
    redact: bool,
    transform: EventTransform | None,
) -> _Chunk:
    if transform is None:
        normalized = normalize_records(
            records, cluster=cluster, source=source, batch_id="", redact=redact
        )
        return _Chunk(source, normalized.table, normalized.rejections, normalized.records)
    with gc_paused():
        chunk = decode_records(records, source, redact=redact)
        read = chunk.records
        dropped = transform.apply_chunk(chunk)
        normalized = normalize(chunk, cluster=cluster, source=source, batch_id="")
    return _Chunk(source, normalized.table, normalized.rejections, read, dropped)


class _BatchFeed:
    """Hands the writer the chunks of one batch at a time: same source, bounded size."""

    def __init__(
        self, chunks: queue.Queue[_Chunk | None], batch_records: int, batch_bytes: int
    ) -> None:
        self._chunks = chunks
        self._limit = batch_records
        self._bytes = batch_bytes
        self._next: _Chunk | None = None
        self.finished = False
        self._take()

    def _take(self) -> None:
        self._next = self._chunks.get()
        if self._next is None:
            self.finished = True

    def peek_source(self) -> str:
        assert self._next is not None
        return self._next.source

    def batch(self, taken: IngestSummary) -> Iterator[_Chunk]:
        """Yield the chunks of the next batch, counting what they read and refused in ``taken``.

        Only counts are kept: a chunk's table is freed as soon as the store has consumed it.
        """
        source = self.peek_source()
        records = size = 0
        while (
            self._next is not None
            and self._next.source == source
            and records < self._limit
            and size < self._bytes
        ):
            chunk = self._next
            self._next = None
            records += chunk.records
            size += chunk.table.nbytes
            taken.read += chunk.records
            taken.dropped_by_policy += chunk.dropped
            taken.rejected += len(chunk.rejections)
            taken.rejected_by_reason.update(r.reason for r in chunk.rejections)
            yield chunk
            del chunk
            self._take()

    def drain(self) -> None:
        while not self.finished:
            self._take()


def _commit_batch(
    store: Store,
    feed: _BatchFeed,
    cluster: str,
    summary: IngestSummary,
    quarantine: Quarantine | None,
    progress: ProgressCallback | None,
    detector: BatchDetector | None = None,
    raw_writer: RawWriter | None = None,
) -> None:
    meta = BatchMeta(cluster=cluster, source=feed.peek_source(), batch_id=uuid.uuid4().hex)
    taken = IngestSummary()
    # DuckDB keeps a transaction's Arrow buffers alive until commit anyway, so holding the
    # tables for the detector until then costs no memory; it runs on the whole batch at once.
    written: list[pa.Table] = []

    def tables() -> Iterator[pa.Table]:
        for chunk in feed.batch(taken):
            # Quarantine first: a refused record is on disk before its batch counts as done.
            if quarantine is not None:
                quarantine.write(chunk.rejections)
            if detector is not None:
                written.append(chunk.table)
            yield chunk.table

    write = raw_writer if raw_writer is not None else store.write_batches
    result = write(tables(), meta)
    if detector is not None and written:
        try:
            detector.on_batch(pa.concat_tables(written))
        except Exception as exc:  # the batch is stored; a detection failure must not stop ingest
            log.error("detections failed on batch %s: %s", meta.batch_id, exc)
        written.clear()
    summary.stored += result.stored
    summary.duplicates += result.duplicates
    summary.read += taken.read
    summary.dropped_by_policy += taken.dropped_by_policy
    summary.rejected += taken.rejected
    summary.rejected_by_reason.update(taken.rejected_by_reason)
    if progress is not None:
        progress(taken.read)
