"""The spooled writer: answer after the spool's fsync, commit to the store behind it.

Two threads replace :class:`~.writer.BatchWriter`'s one:

* the **appender** takes the batches queued by requests, counts their duplicates
  (:class:`~.dedupe.KeyIndex`), writes rejected records to the quarantine, appends every queued
  batch to the spool with one ``fdatasync`` (group commit), and resolves the requests' futures:
  the answer is sent once the batch is durable in the spool;
* the **committer** moves spooled batches into the store, as many as are waiting in one
  transaction, each cluster's as one store batch (:func:`merged`), then lets the spool delete
  finished segments. A DuckDB checkpoint stalls only this thread: requests keep being
  answered while it runs.

A store failure never loses an acknowledged batch: the committer retries it with backoff while
the spool fills; a full spool (``max_spool_bytes``) answers 503 with ``Retry-After``.
:func:`replay` commits what a crash left in the spool before the server accepts
requests; :meth:`SpoolWriter.stop` commits everything spooled (SIGTERM drains).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..errors import StoreError
from ..quarantine import Quarantine
from ..store.base import BatchMeta, WriteResult
from .dedupe import KeyIndex
from .metrics import IngestMetrics
from .spool import Spool, encode_frame
from .writer import PreparedBatch, _Timed

log = logging.getLogger("kubetrail.spool")

#: Events committed in one store transaction at most (many spooled batches at once).
MAX_COMMIT_EVENTS = 131_072
#: Longest wait between two commit attempts after a store failure.
MAX_BACKOFF_SECONDS = 5.0
#: How much lower the committer's CPU priority is (nice steps, Linux): answers come first and
#: the store takes the CPU left over; measured in docs/benchmarks.md ("Webhook ingest").
COMMITTER_NICE = 10


class SpoolFull(StoreError):
    """The spool holds ``max_spool_bytes`` of batches not yet in the store."""


@dataclass
class _Spooled:
    table: pa.Table
    meta: BatchMeta
    segment: int
    size: int
    hashes: list[int]
    accepted: int
    acked_at: float = 0.0


class SpoolWriter:
    """Spool, then store: the writer of ``kubetrail serve`` on an embedded store.

    Args:
        store: the store (only the committer thread writes it while running).
        spool: the spool next to the store.
        index: the keys of the store and the spool (duplicates at admission).
        max_bytes: most spooled bytes not yet committed; past it, :class:`SpoolFull`.
        quarantine: where rejected records go before the answer.
        quarantines: the quarantine of each cluster with a store file of its own.
        on_commit: called with the tables of each committed group (the detections' feed).
        metrics: where the spool's gauges and the visibility lag are recorded.
    """

    def __init__(
        self,
        store: Any,
        spool: Spool,
        index: KeyIndex,
        max_bytes: int,
        quarantine: Quarantine | None,
        quarantines: Mapping[str, Quarantine] | None = None,
        on_commit: Callable[[list[Any]], None] | None = None,
        metrics: IngestMetrics | None = None,
    ) -> None:
        self.store = store
        self.spool = spool
        self.index = index
        self.max_bytes = max_bytes
        self.quarantine = quarantine
        self.quarantines = dict(quarantines or {})
        self.on_commit = on_commit
        self.metrics = metrics
        self.spooled_bytes = 0
        self._requests: queue.SimpleQueue[tuple[PreparedBatch, Future[WriteResult]] | None] = (
            queue.SimpleQueue()
        )
        self._ready: deque[_Spooled] = deque()
        self._cond = threading.Condition()
        self._spool_lock = threading.Lock()
        self._stopping = False
        self._stopped = False
        self._appender = threading.Thread(target=self._append_loop, name="kubetrail-spool")
        self._committer = threading.Thread(target=self._commit_loop, name="kubetrail-commit")
        self._appender.daemon = self._committer.daemon = True

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start the appender and the committer."""
        self._appender.start()
        self._committer.start()

    @property
    def alive(self) -> bool:
        """Whether batches can be submitted."""
        return self._appender.is_alive() and self._committer.is_alive() and not self._stopped

    def submit(self, batch: PreparedBatch) -> Future[WriteResult]:
        """Queue a batch; the future resolves once it is durable in the spool."""
        future: Future[WriteResult] = Future()
        if not self.alive:
            future.set_exception(RuntimeError("the writer is stopped"))
            return future
        self._requests.put((batch, future))
        return future

    def stop(self, timeout: float = 30.0) -> None:
        """Spool what is queued, commit everything spooled, then stop both threads."""
        if self._stopped:
            return
        self._stopped = True
        self._requests.put(None)
        deadline = time.monotonic() + timeout
        self._appender.join(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._committer.join(max(0.0, deadline - time.monotonic()))
        if self._committer.is_alive():
            log.error("the store did not take every spooled batch; they stay in the spool")
        with self._spool_lock:
            self.spool.close()

    # -- the appender ------------------------------------------------------------------

    def _append_loop(self) -> None:
        while True:
            item = self._requests.get()
            if item is None:
                return
            group = [item]
            while not self._requests.empty():
                more = self._requests.get()
                if more is None:
                    self._append([g for g in group if g[1].set_running_or_notify_cancel()])
                    return
                group.append(more)
            self._append([g for g in group if g[1].set_running_or_notify_cancel()])

    def _append(self, group: list[tuple[PreparedBatch, Future[WriteResult]]]) -> None:
        started = time.perf_counter()
        frames: list[bytes] = []
        spooled: list[tuple[_Spooled, Future[WriteResult], int]] = []
        for batch, future in group:
            try:
                frame = encode_frame(batch.table, batch.meta)
                if self.spooled_bytes + len(frame) > self.max_bytes and self.spooled_bytes:
                    raise SpoolFull(
                        f"the spool holds {self.spooled_bytes} bytes not yet in the store "
                        f"(max_spool_bytes {self.max_bytes}); retry later"
                    )
                quarantine = self.quarantines.get(batch.meta.cluster, self.quarantine)
                if quarantine is not None and batch.rejections:
                    quarantine.write(batch.rejections)
                admitted = self.index.admit(batch.meta.cluster, batch.table)
            except Exception as exc:  # answered 503 (a store read or the quarantine failed)
                future.set_exception(exc)
                continue
            accepted = batch.table.num_rows - admitted.duplicates
            entry = _Spooled(batch.table, batch.meta, 0, len(frame), admitted.hashes, accepted)
            frames.append(frame)
            spooled.append((entry, future, admitted.duplicates))
            self._count_bytes(len(frame))
        if not frames:
            return
        try:
            with self._spool_lock:
                segment = self.spool.append(frames)
        except Exception as exc:  # nothing of the group was acknowledged
            log.error("cannot write the spool: %s", exc)
            for entry, future, _ in spooled:
                self.index.forget(entry.hashes)
                self._count_bytes(-entry.size)
                future.set_exception(StoreError(f"cannot write the spool: {exc}"))
            return
        seconds = time.perf_counter() - started
        now = time.monotonic()
        with self._cond:
            for entry, _, _ in spooled:
                entry.segment, entry.acked_at = segment, now
                self._ready.append(entry)
            self._cond.notify()
        self._gauge()
        for entry, future, duplicates in spooled:
            future.set_result(_Timed(entry.accepted, duplicates, seconds))

    # -- the committer -----------------------------------------------------------------

    def _commit_loop(self) -> None:
        _lower_priority()
        backoff = 0.5
        while True:
            with self._cond:
                while not self._ready and not self._stopping:
                    self._cond.wait()
                if not self._ready:
                    return
                group: list[_Spooled] = []
                events = 0
                for entry in self._ready:
                    if group and events + entry.table.num_rows > MAX_COMMIT_EVENTS:
                        break
                    group.append(entry)
                    events += entry.table.num_rows
            try:
                results = self._write(group)
            except Exception as exc:  # acknowledged: keep it and try again
                log.error("cannot commit %d spooled batch(es), retrying: %s", len(group), exc)
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            backoff = 0.5
            self._committed(group, results)

    def _write(self, group: list[_Spooled]) -> dict[str, WriteResult]:
        started = time.perf_counter()
        items = merged((e.table, e.meta) for e in group)
        results = self.store.write_group(items)
        if self.metrics is not None:
            self.metrics.spool_commit_seconds.observe(time.perf_counter() - started)
        return {m.cluster: r for (_, m), r in zip(items, results, strict=True)}

    def _committed(self, group: list[_Spooled], results: dict[str, WriteResult]) -> None:
        now = time.monotonic()
        with self._cond:
            for _ in group:
                self._ready.popleft()
        segments: dict[int, int] = {}
        accepted: dict[str, int] = {}
        for entry in group:
            self.index.committed(entry.hashes)
            self._count_bytes(-entry.size)
            segments[entry.segment] = segments.get(entry.segment, 0) + 1
            accepted[entry.meta.cluster] = accepted.get(entry.meta.cluster, 0) + entry.accepted
            if self.metrics is not None:
                self.metrics.visibility_seconds.observe(now - entry.acked_at)
        if self.metrics is not None:
            for cluster, result in results.items():
                if result.stored != accepted.get(cluster, 0):
                    self.metrics.duplicate_mismatch.labels(cluster).inc(
                        abs(result.stored - accepted.get(cluster, 0))
                    )
        with self._spool_lock:
            for number, frames in segments.items():
                self.spool.release(number, frames)
        self._gauge()
        if self.on_commit is not None:
            try:
                self.on_commit([e.table for e in group])
            except Exception as exc:  # detections never stop ingest
                log.error("on_commit failed: %s", exc)

    def _count_bytes(self, delta: int) -> None:
        with self._cond:  # both threads change it
            self.spooled_bytes += delta

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.spool_bytes.set(self.spooled_bytes)


def merged(items: Iterable[tuple[pa.Table, BatchMeta]]) -> list[tuple[pa.Table, BatchMeta]]:
    """The spooled batches of each cluster as one store batch, under a new batch id.

    One INSERT of many batches costs a fraction of one INSERT each (measured 3-4x, see
    docs/benchmarks.md). The stored batch, its ``batches`` row and its chain record then
    cover every request it holds; the answers were given at admission.
    """
    tables: dict[tuple[str, str | None], list[pa.Table]] = {}
    for table, meta in items:
        tables.setdefault((meta.cluster, meta.source), []).append(table)
    return [
        (pa.concat_tables(parts), BatchMeta(cluster, source, uuid.uuid4().hex))
        for (cluster, source), parts in tables.items()
    ]


def replay(store: Any, spool: Spool) -> int:
    """Commit the batches a crash left in the spool, then delete them from it.

    Runs before the server takes requests. Batches the store already holds (committed just
    before the crash, when their segment was not yet deleted) are stored again as
    duplicates: the store skips every event it has, so nothing is stored twice; the only
    trace is a ``batches`` row that stored 0 events.

    Returns:
        How many events were not yet in the store.
    """
    items = list(spool.replay())
    stored = 0
    try:
        for chunk in _chunks(items):
            stored += sum(r.stored for r in store.write_group(merged(chunk)))
    except StoreError as exc:  # the spool stays as it is for the next start
        raise StoreError(
            f"cannot commit the spool {spool.directory} to the store "
            f"({len(items)} acknowledged batch(es) wait there): {exc}"
        ) from exc
    spool.discard_leftover()
    if items:
        log.warning(
            "replayed the spool: %d batch(es), %d events not yet stored", len(items), stored
        )
    return stored


def _chunks(
    items: list[tuple[pa.Table, BatchMeta]],
) -> Iterable[list[tuple[pa.Table, BatchMeta]]]:
    """Consecutive runs of items of at most ``MAX_COMMIT_EVENTS`` events (one item at least)."""
    chunk: list[tuple[pa.Table, BatchMeta]] = []
    events = 0
    for item in items:
        if chunk and events + item[0].num_rows > MAX_COMMIT_EVENTS:
            yield chunk
            chunk, events = [], 0
        chunk.append(item)
        events += item[0].num_rows
    if chunk:
        yield chunk


def _lower_priority() -> None:
    """Lower the calling thread's CPU priority by :data:`COMMITTER_NICE` (Linux only).

    On Linux a thread is a task of its own, so ``setpriority`` with its id changes that thread
    alone (threads started by DuckDB at connection time keep theirs).
    """
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(
            os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + COMMITTER_NICE)
        )
