"""Synthetic events for the deduplication tests: many keys spread over several days."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from kubetrail.model.schema import EVENT_SCHEMA
from kubetrail.store.base import BatchMeta
from kubetrail.store.clickhouse import ClickHouseStore

START = datetime(2026, 3, 1, 22, 0, 0)


def events(n: int, *, first: int = 0, days: int = 4, cluster: str = "c") -> pa.Table:
    """``n`` events spread evenly over ``days`` days from :data:`START` (22:00), so over
    ``days + 1`` daily partitions; auditIDs ``<cluster>-<number>`` from ``first`` on (times
    always start at :data:`START`: slice one table for batches that share events)."""
    step = timedelta(days=days) / n
    rows: list[dict[str, Any]] = []
    for i in range(first, first + n):
        values: dict[str, Any] = dict.fromkeys(EVENT_SCHEMA.names)
        values.update(
            cluster=cluster,
            audit_id=f"{cluster}-{i:06d}",
            stage="ResponseComplete",
            is_final=True,
            verb="get",
            request_received=START + step * (i - first),
            raw=f'{{"auditID": "{cluster}-{i:06d}"}}',
        )
        rows.append(values)
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


def rows_without_final(store: ClickHouseStore, table: str = "events") -> int:
    """Rows as stored: every copy counts."""
    found = store._client.query(f"SELECT count() FROM {table}", settings={"final": 0})
    return int(found.result_rows[0][0])


def race(
    collectors: Sequence[ClickHouseStore], batches: Sequence[pa.Table], jitter: float = 0.01
) -> None:
    """Every collector writes every batch (as a retried webhook batch reaching them all), at once.

    A barrier starts each batch on all collectors together; a delay of up to ``jitter`` seconds
    each spreads their duplicate checks before, between and after the others' INSERTs. Bounded:
    each thread gets 120 s; an error in one is raised here.
    """
    start = threading.Barrier(len(collectors), timeout=60)
    errors: list[BaseException] = []

    def collect(store: ClickHouseStore, index: int) -> None:
        delays = random.Random(index)
        try:
            for number, table in enumerate(batches):
                start.wait()
                threading.Event().wait(delays.uniform(0, jitter))
                cluster = str(table.column("cluster")[0])
                store.write_batch(table, BatchMeta(cluster, "webhook", f"b{number}-{index}"))
        except BaseException as exc:  # reported by the caller's thread
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=collect, args=(s, i)) for i, s in enumerate(collectors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    assert not any(thread.is_alive() for thread in threads)
