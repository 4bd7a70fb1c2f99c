"""The ingest pipeline: records from a source → decode (+ redact) → normalise → store.

The pipeline works in batches. While the store commits one batch (DuckDB releases the GIL),
the next one is decoded, so the two cores of a small machine both work. A bounded queue of
one batch between the two keeps memory constant whatever the input size.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from .model.decode import Rejection
from .model.normalize import normalize_records
from .quarantine import Quarantine
from .sources.files import Record, iter_records, source_name
from .store.base import BatchMeta, Store

#: Records per batch: large enough to amortise a transaction, small enough for bounded memory.
BATCH_RECORDS = 20_000


@dataclass
class IngestSummary:
    """What an ingest did. ``read == stored + duplicates + rejected`` always holds."""

    read: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    quarantine: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """The JSON shape of ``kubetrail ingest --format json``."""
        return {
            "read": self.read,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "quarantine": self.quarantine,
            "rejected_by_reason": dict(self.rejected_by_reason.most_common()),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Batch:
    table: object
    meta: BatchMeta
    rejections: list[Rejection]
    records: int


ProgressCallback = Callable[[int], None]


def ingest_paths(
    store: Store,
    paths: Sequence[str | Path],
    cluster: str = "default",
    *,
    quarantine: Quarantine | None = None,
    redact: bool = True,
    progress: ProgressCallback | None = None,
    batch_records: int = BATCH_RECORDS,
) -> IngestSummary:
    """Ingest files (or ``-`` for stdin) into a store.

    Args:
        store: where events go.
        paths: files to read, in order; ``-`` reads standard input.
        cluster: the cluster the events belong to. Default ``"default"``.
        quarantine: where refused records go; ``None`` counts them only.
        redact: remove Secret values before storage. Default ``True``.
        progress: called with the number of records read after each batch.
        batch_records: records per batch.

    Returns:
        The counts of what was read, stored, skipped as duplicate and refused.

    Raises:
        SourceError: a path cannot be read (what was read before it stays stored).
        StoreError: the store failed; batches committed before stay stored.
    """

    def batches() -> Iterator[tuple[str, list[Record]]]:
        for path in paths:
            records = iter_records(path)
            name = source_name(path)
            while chunk := list(islice(records, batch_records)):
                yield name, chunk

    return ingest_batches(
        store, batches(), cluster, quarantine=quarantine, redact=redact, progress=progress
    )


def ingest_batches(
    store: Store,
    batches: Iterable[tuple[str, list[Record]]],
    cluster: str,
    *,
    quarantine: Quarantine | None = None,
    redact: bool = True,
    progress: ProgressCallback | None = None,
) -> IngestSummary:
    """Decode, normalise and store ``(source, records)`` batches; see :func:`ingest_paths`."""
    summary = IngestSummary(quarantine=str(quarantine.path) if quarantine else None)
    started = time.perf_counter()
    pending: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
    failure: list[BaseException] = []

    def write_loop() -> None:
        while (batch := pending.get()) is not None:
            if failure:
                continue  # drain without writing after a failure
            try:
                _commit(store, batch, summary, quarantine)
                if progress is not None:
                    progress(batch.records)
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)

    writer = threading.Thread(target=write_loop, name="kubetrail-writer", daemon=True)
    writer.start()
    try:
        for source, records in batches:
            if failure:
                break
            pending.put(_prepare(source, records, cluster, redact))
    finally:
        pending.put(None)
        writer.join()
        summary.seconds = time.perf_counter() - started
    if failure:
        raise failure[0]
    return summary


def _prepare(source: str, records: list[Record], cluster: str, redact: bool) -> _Batch:
    meta = BatchMeta(cluster=cluster, source=source, batch_id=uuid.uuid4().hex)
    normalized = normalize_records(
        records, cluster=cluster, source=source, batch_id=meta.batch_id, redact=redact
    )
    return _Batch(normalized.table, meta, normalized.rejections, normalized.records)


def _commit(
    store: Store, batch: _Batch, summary: IngestSummary, quarantine: Quarantine | None
) -> None:
    # Quarantine first: a refused record is on disk before the batch counts as done.
    if quarantine is not None:
        quarantine.write(batch.rejections)
    result = store.write_batch(batch.table, batch.meta)  # type: ignore[arg-type]
    summary.read += batch.records
    summary.stored += result.stored
    summary.duplicates += result.duplicates
    summary.rejected += len(batch.rejections)
    summary.rejected_by_reason.update(r.reason for r in batch.rejections)
