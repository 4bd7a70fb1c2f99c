"""The ClickHouse engine behind the Store protocol: writes, deduplication, retention, errors."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pyarrow as pa
import pytest
from synthetic import final_gets, rows_without_final

from kubetrail.errors import StoreError
from kubetrail.pipeline import ingest_paths
from kubetrail.store.base import BatchMeta, Store
from kubetrail.store.clickhouse import ClickHouseStore
from testdata import EVENT_FILES

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")


def batch(n: int, *, start: int = 0, cluster: str = "c", day: int = 1) -> pa.Table:
    keys = [
        (f"id-{i}", datetime(2026, 1, day, 12, 0, 0, i % 1_000_000))
        for i in range(start, start + n)
    ]
    return final_gets(cluster, keys)


def test_is_a_store(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    assert isinstance(store, Store)
    assert store.dialect == "clickhouse"


def test_retried_batch_is_skipped(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    assert store.write_batch(batch(100), BatchMeta("c", "s", "b1")).stored == 100
    again = store.write_batch(batch(150), BatchMeta("c", "s", "b2"))
    assert (again.stored, again.duplicates) == (50, 100)
    assert store.count() == rows_without_final(store) == 150
    rows = store.query("SELECT batch_id, stored, duplicates FROM batches ORDER BY batch_id")
    assert rows.to_pylist() == [
        {"batch_id": "b1", "stored": 100, "duplicates": 0},
        {"batch_id": "b2", "stored": 50, "duplicates": 100},
    ]


def test_same_id_at_another_time_is_another_request(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    store.write_batch(batch(10, day=1), BatchMeta("c", "s", "b1"))
    assert store.write_batch(batch(10, day=2), BatchMeta("c", "s", "b2")).stored == 10
    assert store.write_batch(batch(10, cluster="d"), BatchMeta("d", "s", "b3")).stored == 10
    assert store.count() == 30 and store.count("d") == 10


def test_earlier_stages_of_the_same_requests_are_not_duplicates(new_clickhouse_store: Any) -> None:
    # The duplicate check asks the server for the whole key: a request's RequestReceived,
    # stored by the batch before, shares the auditID and time but not the stage.
    store = new_clickhouse_store()
    received = batch(40)
    stage = received.schema.get_field_index("stage")
    received = received.set_column(stage, "stage", pa.array(["RequestReceived"] * 40))
    assert store.write_batch(received, BatchMeta("c", "s", "b1")).stored == 40
    complete = store.write_batch(batch(60), BatchMeta("c", "s", "b2"))
    assert (complete.stored, complete.duplicates) == (60, 0)
    again = store.write_batch(batch(60), BatchMeta("c", "s", "b3"))
    assert (again.stored, again.duplicates) == (0, 60)
    assert rows_without_final(store) == 100


def test_collectors_racing_on_one_batch_store_it_once(new_clickhouse_store: Any) -> None:
    """Several collectors write the same retried batch at the same moment (layer 2: tokens)."""
    first = new_clickhouse_store()
    collectors = [first] + [new_clickhouse_store(database=first.database) for _ in range(3)]
    table = batch(2000)
    start = threading.Barrier(len(collectors))

    def write(store: ClickHouseStore, index: int) -> None:
        start.wait()
        store.write_batch(table, BatchMeta("c", "webhook", f"b{index}"))

    threads = [threading.Thread(target=write, args=(s, i)) for i, s in enumerate(collectors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert rows_without_final(first) == first.count() == 2000  # one insert won, by its token
    assert run_count(first, "| stats count()") == 2000


def run_count(store: ClickHouseStore, text: str) -> int:
    from kubetrail.query import run_query

    return int(run_query(store, text).rows()[0][0])


def test_copies_of_differently_cut_batches(new_clickhouse_store: Any) -> None:
    """Copies no check or token caught (written behind the store's back here) are counted by
    default reads, never by ``exact_reads`` (FINAL), and merge away."""
    exact = new_clickhouse_store(exact_reads=True)
    fast = new_clickhouse_store(database=exact.database)
    assert fast.read_settings == {"final": 0}  # the default: no FINAL
    for start in (0, 100, 200):  # overlapping cuts, inserted behind the check's back
        fast._client.insert_arrow("events", batch(300, start=start), database=fast.database)
    assert rows_without_final(fast) == fast.count() == 900
    assert exact.count() == 500 and len(list(exact.export())) == 500
    assert exact.stats().total == 500 and run_count(exact, "| stats count()") == 500
    fast.optimize()
    assert fast.count() == rows_without_final(fast) == 500


def test_retention_per_cluster(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store(retention={"dev": 30, "*": 36_500})
    ingest_paths(store, [str(EVENT_FILES[0])], "prod")
    ingest_paths(store, [str(EVENT_FILES[0])], "dev")
    store.optimize()  # TTL is applied when parts merge
    assert store.count("dev") == 0  # these events are years old
    assert store.count("prod") > 0
    store.set_retention({})  # keep forever
    # (Another file: the very same events again would be dropped by their insert token.)
    ingest_paths(store, [str(EVENT_FILES[1])], "dev")
    store.optimize()
    assert store.count("dev") > 0


def test_delete_older_than(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    store.write_batch(batch(10, day=1), BatchMeta("c", "s", "b1"))
    store.write_batch(batch(10, day=3, cluster="d"), BatchMeta("d", "s", "b2"))
    assert store.delete_older_than(datetime(2026, 1, 2), cluster="d") == 0
    assert store.delete_older_than(datetime(2026, 1, 2)) == 10
    assert store.count() == 10 and store.count("d") == 10


def test_wrong_schema_and_driver_errors_are_store_errors(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    with pytest.raises(StoreError, match="event schema"):
        store.write_batch(pa.table({"x": [1]}), BatchMeta("c", "s", "b"))
    with pytest.raises(StoreError, match="query failed") as info:
        store.query("SELECT no_such_column FROM events")
    assert info.value.__cause__ is not None
    assert store.query("SELECT count() AS n FROM events WHERE verb = 'get'").to_pylist() == [
        {"n": 0}
    ]


def test_unreachable_server_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot connect"):
        ClickHouseStore("http://127.0.0.1:9", database="x")


def test_schema_version_is_checked(new_clickhouse_store: Any, clickhouse_url: str) -> None:
    store = new_clickhouse_store()
    store._client.command("TRUNCATE TABLE meta")
    store._client.insert("meta", [["schema_version", "99"]], database=store.database)
    with pytest.raises(StoreError, match="schema version 99"):
        ClickHouseStore(clickhouse_url, database=store.database, create=False)


def test_query_parameters(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    store.write_batch(batch(5), BatchMeta("c", "s", "b1"))
    named = store.query("SELECT audit_id FROM events WHERE audit_id = {a:String}", {"a": "id-3"})
    assert named.column(0).to_pylist() == ["id-3"]
    empty = store.query("SELECT audit_id, request_received FROM events WHERE audit_id = 'none'")
    assert empty.schema == pa.schema(
        [("audit_id", pa.string()), ("request_received", pa.timestamp("us"))]
    )
