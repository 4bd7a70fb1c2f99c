"""The writer thread: order, grouping with ``write_group``, failures, drain on stop."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest

from kubetrail.errors import StoreError
from kubetrail.store.base import BatchMeta, WriteResult
from kubetrail.web.writer import Admission, BatchWriter, PreparedBatch


class FakeStore:
    def __init__(self, group: bool = False, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_on = fail_on
        if group:
            self.write_group = self._write_group

    def write_batch(self, table: Any, meta: BatchMeta) -> WriteResult:
        if meta.batch_id == self.fail_on:
            raise StoreError("boom")
        self.calls.append([meta.batch_id])
        return WriteResult(table, 0)

    def _write_group(self, items: list[tuple[Any, BatchMeta]]) -> list[WriteResult]:
        self.calls.append([m.batch_id for _, m in items])
        return [WriteResult(t, 1) for t, _ in items]


def batch(i: int) -> PreparedBatch:
    return PreparedBatch(i, BatchMeta("c", "webhook", f"b{i}"), [])


def submit_all(store: FakeStore, n: int) -> list[Future[WriteResult]]:
    writer = BatchWriter(store, None)  # type: ignore[arg-type]
    futures = [writer.submit_before_start(batch(i)) for i in range(n)]
    writer.start()
    writer.stop(10)
    return futures


def test_one_transaction_per_batch_without_write_group() -> None:
    store = FakeStore()
    futures = submit_all(store, 3)
    assert store.calls == [["b0"], ["b1"], ["b2"]]
    assert [f.result().stored for f in futures] == [0, 1, 2]


def test_queued_batches_share_a_transaction_with_write_group() -> None:
    store = FakeStore(group=True)
    futures = submit_all(store, 3)
    assert store.calls == [["b0", "b1", "b2"]]
    assert [(f.result().stored, f.result().duplicates) for f in futures] == [(0, 1), (1, 1), (2, 1)]


def test_a_failed_batch_fails_alone() -> None:
    store = FakeStore(fail_on="b1")
    futures = submit_all(store, 3)
    with pytest.raises(StoreError):
        futures[1].result()
    assert futures[0].result().stored == 0 and futures[2].result().stored == 2


def test_stopped_writer_refuses_and_admission_is_bounded() -> None:
    writer = BatchWriter(FakeStore(), None)  # type: ignore[arg-type]
    writer.start()
    writer.stop(10)
    with pytest.raises(RuntimeError):
        writer.submit(batch(0)).result()
    admission = Admission(2)
    assert admission.try_admit() and admission.try_admit() and not admission.try_admit()
    admission.release()
    assert admission.try_admit()
