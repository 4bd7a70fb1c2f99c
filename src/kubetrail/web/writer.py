"""The single writer: one thread owns the store and commits prepared batches in order.

Used where there is no spool (a ClickHouse store, or ``max_spool_bytes: 0``); on the embedded
store :mod:`.spool_writer` answers from its spool instead.

DuckDB takes one writer at a time, so every request's batch goes through this thread. A request
waits on the :class:`~concurrent.futures.Future` of its batch and answers 200 only once
``write_batch`` has returned, i.e. once the batch's transaction committed. Memory is bounded by
admission (see :class:`Admission`): at most ``capacity`` batches exist between the request being
admitted and its answer, so the queue here never grows past that.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ..model.decode import Rejection
from ..quarantine import Quarantine
from ..store.base import BatchMeta, Store, WriteResult

log = logging.getLogger("kubetrail.writer")

#: Batches committed in one transaction at most (with a store that offers ``write_group``).
MAX_GROUP = 32


@dataclass
class PreparedBatch:
    """A normalised batch ready to commit."""

    table: Any  # pyarrow.Table
    meta: BatchMeta
    rejections: list[Rejection]


class Admission:
    """Counts batches between admission and answer; refuses past ``capacity``.

    Used from the event loop only, so it needs no lock.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.pending = 0
        self.draining = False

    def try_admit(self) -> bool:
        """Take a place, or return ``False`` when every place is taken."""
        if self.pending >= self.capacity:
            return False
        self.pending += 1
        return True

    def release(self) -> None:
        """Give a place back."""
        self.pending -= 1


class BatchWriter:
    """The thread that commits batches, one transaction each, in arrival order.

    Args:
        store: the store; only this thread touches it while running.
        quarantine: where rejected records go before the batch commits (``None``: dropped
            after counting).
        quarantines: the quarantine of each cluster that has a store file of its own, so its
            refused records stay next to its store (production apart from development).
        on_commit: called with the tables of each committed group (the detections' feed).
    """

    def __init__(
        self,
        store: Store,
        quarantine: Quarantine | None,
        quarantines: Mapping[str, Quarantine] | None = None,
        on_commit: Callable[[list[Any]], None] | None = None,
    ) -> None:
        self.store = store
        self.quarantine = quarantine
        self.quarantines = dict(quarantines or {})
        # Called with the committed tables after each commit (detections, issue 6).
        self.on_commit = on_commit
        self.failed: BaseException | None = None
        self._queue: queue.SimpleQueue[tuple[PreparedBatch, Future[WriteResult]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="kubetrail-writer", daemon=True)
        self._stopped = False

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether batches can be submitted."""
        return self._thread.is_alive() and not self._stopped

    def submit(self, batch: PreparedBatch) -> Future[WriteResult]:
        """Queue a batch; the future resolves with the write result after commit."""
        future: Future[WriteResult] = Future()
        if not self.alive:
            future.set_exception(RuntimeError("the writer is stopped"))
            return future
        self._queue.put((batch, future))
        return future

    def submit_before_start(self, batch: PreparedBatch) -> Future[WriteResult]:
        """Queue a batch before :meth:`start` (tests use it to form a group)."""
        future: Future[WriteResult] = Future()
        self._queue.put((batch, future))
        return future

    def stop(self, timeout: float = 30.0) -> None:
        """Commit everything queued, then stop the thread (the drain on shutdown)."""
        if self._stopped:
            return
        self._stopped = True
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            group = [item]
            # Take what else is queued (bounded by admission): one transaction for all of it
            # when the store can report per-batch results (``write_group``).
            while len(group) < MAX_GROUP and not self._queue.empty():
                more = self._queue.get()
                if more is None:
                    stopping = True
                    break
                group.append(more)
            live = [(b, f) for b, f in group if f.set_running_or_notify_cancel()]
            if live:
                self._commit(live)

    def _commit(self, group: list[tuple[PreparedBatch, Future[WriteResult]]]) -> None:
        write_group = getattr(self.store, "write_group", None)
        if write_group is None or len(group) == 1:
            for batch, future in group:
                self._write([(batch, future)], lambda items: [self.store.write_batch(*items[0])])
            return
        self._write(group, write_group)

    def _write(self, group: list[tuple[PreparedBatch, Future[WriteResult]]], write: Any) -> None:
        started = time.perf_counter()
        try:
            # Quarantine first: a refused record is on disk before its batch is answered.
            for batch, _ in group:
                quarantine = self.quarantines.get(batch.meta.cluster, self.quarantine)
                if quarantine is not None and batch.rejections:
                    quarantine.write(batch.rejections)
            results = write([(b.table, b.meta) for b, _ in group])
        except BaseException as exc:  # answered as 503; the senders retry
            log.error("cannot commit %d batch(es): %s", len(group), exc)
            for _, future in group:
                future.set_exception(exc)
            return
        seconds = time.perf_counter() - started
        for (_, future), result in zip(group, results, strict=True):
            future.set_result(_Timed(result.stored, result.duplicates, seconds))
        if self.on_commit is not None:
            try:
                self.on_commit([b.table for b, _ in group])
            except Exception as exc:  # detections never stop ingest
                log.error("on_commit failed: %s", exc)


@dataclass(frozen=True)
class _Timed(WriteResult):
    seconds: float = 0.0
