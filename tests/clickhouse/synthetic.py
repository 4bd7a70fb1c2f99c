"""Synthetic events for the ClickHouse tests: many keys over several days, listing rows, plans."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
    return final_gets(
        cluster,
        [(f"{cluster}-{i:06d}", START + step * (i - first)) for i in range(first, first + n)],
    )


def final_gets(cluster: str, keys: Sequence[tuple[str, datetime]]) -> pa.Table:
    """Final ``get`` events of ``cluster``, one per ``(auditID, request time)``, the other
    columns empty and the raw JSON only the auditID."""
    rows: list[dict[str, Any]] = []
    for audit_id, received in keys:
        values: dict[str, Any] = dict.fromkeys(EVENT_SCHEMA.names)
        values.update(
            cluster=cluster,
            audit_id=audit_id,
            stage="ResponseComplete",
            is_final=True,
            verb="get",
            request_received=received,
            raw=f'{{"auditID": "{audit_id}"}}',
        )
        rows.append(values)
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


def rows_without_final(store: ClickHouseStore, table: str = "events") -> int:
    """Rows as stored: every copy counts."""
    found = store._client.query(f"SELECT count() FROM {table}", settings={"final": 0})
    return int(found.result_rows[0][0])


def _write_batch(store: ClickHouseStore, index: int, table: pa.Table, meta: BatchMeta) -> None:
    store.write_batch(table, meta)


def race(
    collectors: Sequence[ClickHouseStore],
    batches: Sequence[pa.Table],
    jitter: float = 0.01,
    write: Callable[[ClickHouseStore, int, pa.Table, BatchMeta], None] = _write_batch,
) -> None:
    """Every collector writes every batch (as a retried webhook batch reaching them all), at once.

    A barrier starts each batch on all collectors together; a delay of up to ``jitter`` seconds
    each spreads their duplicate checks before, between and after the others' INSERTs. Bounded:
    each thread gets 120 s; an error in one is raised here. ``write(store, collector_index,
    table, meta)`` stores one batch (default: ``store.write_batch``).
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
                write(store, index, table, BatchMeta(cluster, "webhook", f"b{number}-{index}"))
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


#: Rows of :func:`fill_listing_rows`: 25 granules of 8192 rows over three daily partitions.
LISTING_ROWS = 200_000
#: Events per cluster, to compare with a projection's own rows.
CLUSTER_COUNTS = "SELECT cluster, count() FROM events GROUP BY cluster ORDER BY cluster"


def fill_listing_rows(store: Any) -> None:
    """One INSERT made by the server: clusters 'a' and 'b' alternating, one row a second from
    2026-01-01, every 7th a secret; only the columns listings read are set."""
    store._client.command(
        "INSERT INTO events (cluster, audit_id, stage, is_final, request_received, "
        "request_uri, raw) SELECT if(number % 2 = 0, 'a', 'b'), toString(number), "
        "'ResponseComplete', true, "
        "toDateTime64('2026-01-01 00:00:00', 6, 'UTC') + toIntervalSecond(number), "
        "if(number % 7 = 0, '/api/v1/namespaces/x/secrets/s', '/api/v1/pods'), '{}' "
        f"FROM numbers({LISTING_ROWS})"
    )


def plan(store: Any, sql: str, explain: str = "indexes = 1") -> list[str]:
    """The lines of ``EXPLAIN <explain> <sql>``, stripped."""
    rows = store._client.query(f"EXPLAIN {explain} {sql}").result_rows
    return [str(row[0]).strip() for row in rows]


def insert_as_racing_collectors(store: Any, insert: str) -> None:
    """Run one INSERT twice under different deduplication tokens, as two racing collectors
    that cut a retried batch differently would: ClickHouse keeps both copies until a merge."""
    for token in ("one", "other"):
        store._client.command(insert, settings={"insert_deduplication_token": token})


#: One final 'get' in cluster 'prod' and one in 'dev', a minute apart at most.
RACED_ROWS = (
    "INSERT INTO events (cluster, audit_id, stage, is_final, verb, request_received, raw) "
    "VALUES ('prod', 'a1', 'ResponseComplete', true, 'get', '2026-01-01 10:00:00.000001', "
    "'{}'), ('dev', 'a2', 'ResponseComplete', true, 'get', '2026-01-01 10:00:59.999999', '{}')"
)


def counts_around_a_merge(store: Any, counts: str) -> tuple[list[Any], list[Any]]:
    """The rows of the query ``counts`` after :data:`RACED_ROWS` went in from two racing
    collectors (two copies of each row), and again after a merge dropped the copies."""
    insert_as_racing_collectors(store, RACED_ROWS)
    before = store._client.query(counts).result_rows
    store.optimize()
    return before, store._client.query(counts).result_rows


@contextmanager
def read_settings(store: Any, settings: dict[str, Any]) -> Iterator[None]:
    """Read ``store`` with ``settings`` inside the block (a shared store gets its own back)."""
    kept = store.read_settings
    store.read_settings = settings
    try:
        yield
    finally:
        store.read_settings = kept


def add_projection_as_documented(store: Any, projection: str, name: str) -> None:
    """Add a projection to an existing store with the statements docs/scale-out.md gives."""
    from kubetrail.store.clickhouse_schema import PROJECTION_SETTINGS

    add = projection.replace(f"PROJECTION {name}", f"PROJECTION IF NOT EXISTS {name}")
    for statement in (
        f"ALTER TABLE events MODIFY SETTING {PROJECTION_SETTINGS}",
        f"ALTER TABLE events ADD {add}",
        f"ALTER TABLE events MATERIALIZE PROJECTION {name}",
    ):
        store._client.command(statement, settings={"mutations_sync": 1})


def projection_sorting_key(store: Any, name: str) -> list[str] | None:
    """The sorting key of the events table's projection ``name``, ``None`` when it has none."""
    rows = store._client.query(
        "SELECT sorting_key FROM system.projections "
        "WHERE database = currentDatabase() AND table = 'events' AND name = {name:String}",
        parameters={"name": name},
    ).result_rows
    return list(rows[0][0]) if rows else None
