"""The events table's sorting key: (cluster, hour, is_final, verb, request time, auditID, stage).

Locks in what the key is for and what it must not break: the key and the primary index are the
documented ones; queries on ``is_final`` and a verb select fewer granules (index analysis, which
is deterministic, unlike the run time); copies of an event, also one without a verb (NULL in the
key), still collapse into one row; answers and retention stay exact.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from kubetrail.store.clickhouse_schema import ORDER_BY, PRIMARY_KEY

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")

ROWS = 240_000  # 30 granules of 8192 rows over four hours: about 7 granules an hour
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]


def _fill(store: Any) -> None:
    # One INSERT made by the server: a request every 0.12 s over four hours, two stages each
    # (the second final), the verb cycling; only the columns the queries read matter here.
    verbs = "[" + ", ".join(f"'{v}'" for v in VERBS) + "]"
    store._client.command(
        "INSERT INTO events (cluster, audit_id, stage, is_final, verb, request_received, raw) "
        "SELECT 'prod', toString(intDiv(number, 2)), "
        "if(number % 2 = 0, 'RequestReceived', 'ResponseComplete'), number % 2 = 1, "
        f"{verbs}[intDiv(number, 2) % 8 + 1], "
        "toDateTime64('2026-01-01 00:00:00', 6, 'UTC') + toIntervalMillisecond(intDiv(number, 2) "
        f"* 120), '{{}}' FROM numbers({ROWS})"
    )


def _granules(store: Any, where: str, index: str = "PrimaryKey") -> tuple[int, int]:
    """(selected, total) granules after one index's analysis of ``where``."""
    plan = [
        str(row[0]).strip()
        for row in store._client.query(
            f"EXPLAIN indexes = 1 SELECT max(audit_id) FROM events WHERE {where}"
        ).result_rows
    ]
    at = max(i for i, p in enumerate(plan) if p == index or p.startswith(f"Name: {index}"))
    line = next(p for p in plan[at:] if p.startswith("Granules:"))
    selected, total = line.removeprefix("Granules:").split("/")
    return int(selected), int(total)


def test_the_sorting_key_and_the_primary_index(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    found = store._client.query(
        "SELECT sorting_key, primary_key FROM system.tables "
        "WHERE database = currentDatabase() AND name = 'events'"
    ).result_rows
    assert found == [(ORDER_BY.strip("()"), PRIMARY_KEY.strip("()"))]
    assert found[0][0].startswith("cluster, toStartOfHour(request_received), is_final, verb")


def test_final_stages_and_a_verb_read_fewer_granules(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    _fill(store)
    store.optimize()  # one part per day: the granule counts do not depend on merges
    everything = _granules(store, "cluster = 'prod'")
    final = _granules(store, "is_final")
    deletes = _granules(store, "is_final AND verb = 'delete'")
    assert everything[0] == everything[1]
    assert final[0] <= everything[0] * 0.75  # about half, plus the granules at the boundaries
    assert deletes[0] < final[0]
    hour = _granules(
        store,
        "request_received >= toDateTime64('2026-01-01 01:00:00', 6, 'UTC') "
        "AND request_received < toDateTime64('2026-01-01 02:00:00', 6, 'UTC')",
        index="request_received_minmax",
    )
    # A time range selects its hours by the key (and the next one: the key's analysis of a
    # function is inclusive), then the time index leaves the granules of the range.
    assert hour[0] < everything[0] / 2
    # ...and the answers are the same with and without the index.
    for where in ("is_final AND verb = 'delete'", "is_final AND verb IS NULL", "NOT is_final"):
        with_key = store._client.query(f"SELECT count() FROM events WHERE {where}").result_rows
        without = store._client.query(
            f"SELECT count() FROM events WHERE {where}", settings={"use_primary_key": 0}
        ).result_rows
        assert with_key == without
    assert store._client.query(
        "SELECT count() FROM events WHERE is_final AND verb = 'delete'"
    ).result_rows == [(ROWS // 2 // 8,)]


def test_copies_collapse_also_without_a_verb(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    insert = (
        "INSERT INTO events (cluster, audit_id, stage, is_final, verb, request_received, raw) "
        "VALUES ('prod', 'a1', 'ResponseComplete', true, NULL, "
        "'2026-01-01 10:00:00.000001', '{}'), "
        "('prod', 'a2', 'ResponseComplete', true, 'get', '2026-01-01 10:00:00.000002', '{}')"
    )
    for token in ("one", "other"):  # racing collectors' INSERTs under different tokens
        store._client.command(insert, settings={"insert_deduplication_token": token})
    assert store._client.query("SELECT count() FROM events").result_rows == [(4,)]
    assert store._client.query("SELECT count() FROM events FINAL").result_rows == [(2,)]
    store.optimize()
    rows = store._client.query(
        "SELECT audit_id, verb FROM events ORDER BY audit_id", settings={"final": 0}
    ).result_rows
    assert rows == [("a1", None), ("a2", "get")]


def test_retention_deletes_whole_hours_and_keeps_the_rest(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    _fill(store)
    cutoff = datetime(2026, 1, 1, 2, 30)
    before = store._client.query(
        "SELECT countIf(request_received < toDateTime64('2026-01-01 02:30:00', 6, 'UTC')), "
        "count() FROM events"
    ).result_rows[0]
    assert store.delete_older_than(cutoff) == before[0]
    assert store.count() == before[1] - before[0]
    assert store._client.query(
        "SELECT min(request_received) >= toDateTime64('2026-01-01 02:30:00', 6, 'UTC') FROM events"
    ).result_rows == [(True,)]
