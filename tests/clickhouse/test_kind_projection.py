"""The ``by_kind`` projection: the short columns of counts and charts, ordered by
``is_final``, verb and hour (``clickhouse_schema.KIND_PROJECTION``).

Locks in that it exists, that aggregations read it (the plan is deterministic; the speed is
measured in ``bench/clickhouse_bench.py``), that listings do not, that answers are the same
with and without it, and that the two ways rows leave the table keep it exact: merges that drop
copies, and retention's lightweight DELETE. Older stores get it with the migration of
docs/scale-out.md, tested here too.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest
from click.testing import CliRunner
from synthetic import (
    add_projection_as_documented,
    insert_as_racing_collectors,
    plan,
    projection_sorting_key,
)

from kubetrail.cli.store import store as store_group
from kubetrail.pipeline import ingest_paths
from kubetrail.query import run_query
from kubetrail.store.clickhouse_schema import KIND_PROJECTION, PROJECTION_SETTINGS
from testdata import EVENT_FILES

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")

AGGREGATIONS = [
    "| stats count() by verb",
    "code>=400 | top user 10",
    "verb=delete | stats count() by resource, user",
    "| timechart span=5m count() by verb",
    "| stats count(), avg(latency), dc(user) by ns, code, decision",
    "stage=* | stats count() by stage, level",
    "actor=serviceaccount | stats count() by sa",
]
NO_PROJECTION = {"optimize_use_projections": 0}
BY_VERB = "SELECT verb, count() FROM {table} WHERE is_final GROUP BY verb ORDER BY verb"
#: Counts by verb that only ``by_kind`` can answer: the latest time is not in ``by_minute``,
#: which answers plain counts by verb (``test_minute_projection.py``).
KIND_BY_VERB = (
    "SELECT verb, count(), max(request_received) FROM events WHERE is_final{where} GROUP BY verb"
)
#: The projection's own rows, whatever ClickHouse would choose for a query.
PROJECTION_ROWS = "mergeTreeProjection(currentDatabase(), events, by_kind)"
ROWS = 240_000  # 30 granules of 8192 rows over four hours


def _fill(store: Any) -> None:
    # One INSERT made by the server: a request every 0.12 s over four hours, two stages each
    # (the second final), the verb cycling through eight.
    store._client.command(
        "INSERT INTO events (cluster, audit_id, stage, is_final, verb, request_received, raw) "
        "SELECT 'prod', toString(intDiv(number, 2)), "
        "if(number % 2 = 0, 'RequestReceived', 'ResponseComplete'), number % 2 = 1, "
        "['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection']"
        "[intDiv(number, 2) % 8 + 1], "
        "toDateTime64('2026-01-01 00:00:00', 6, 'UTC') + toIntervalMillisecond(intDiv(number, 2)"
        f" * 120), '{{}}' FROM numbers({ROWS})"
    )


def _reads_it(plan: list[str]) -> bool:
    return any(line.endswith("ReadFromMergeTree (by_kind)") for line in plan)


def _answers(store: Any, settings: dict[str, Any]) -> list[Any]:
    store.read_settings = settings
    return [run_query(store, text).rows() for text in AGGREGATIONS]


def _same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 relative (sums in another order differ in the last bits)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_the_events_table_has_the_projection(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    key = projection_sorting_key(store, "by_kind")
    assert key == ["cluster", "is_final", "verb", "toStartOfHour(request_received)"]


def test_store_init_prints_it_for_a_dba() -> None:
    for extra in ([], ["--cluster", "prod"]):
        out = CliRunner().invoke(store_group, ["init", "--engine", "clickhouse", "--print", *extra])
        assert out.exit_code == 0, out.output
        assert KIND_PROJECTION in out.output and PROJECTION_SETTINGS in out.output


def test_aggregations_read_it_and_skip_granules_listings_do_not(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    _fill(store)
    store.optimize()  # one part: the plan does not depend on merges
    counts = plan(store, KIND_BY_VERB.format(where=""))
    assert _reads_it(counts)
    granules = next(line for line in counts if line.startswith("Granules:"))
    selected, total = map(int, granules.removeprefix("Granules:").split("/"))
    assert selected <= total * 0.75  # about half: the final stages only
    deletes = plan(store, KIND_BY_VERB.format(where=" AND verb = 'delete'"))
    granules = next(line for line in deletes if line.startswith("Granules:"))
    # One verb's final stages over the four hours are one run: 15,000 rows, at most 4 granules
    # (hour first, as before 2026-11-24, it was one short run per hour: 8 granules).
    assert int(granules.removeprefix("Granules:").split("/")[0]) <= 4
    listing = plan(
        store,
        "SELECT request_received, audit_id FROM events WHERE is_final "
        "ORDER BY request_received DESC LIMIT 10",
    )
    assert not any("by_kind" in line for line in listing)  # audit_id is not in it


def test_answers_are_the_same_without_it_and_under_final(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    ingest_paths(store, [str(p) for p in EVENT_FILES], "default")
    plain = _answers(store, {"final": 0})
    assert _same(plain, _answers(store, {"final": 0, **NO_PROJECTION}))
    assert _same(plain, _answers(store, {"final": 1}))
    assert any(rows for rows in plain)


def test_merges_that_drop_copies_keep_it_exact(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    insert = (
        "INSERT INTO events (cluster, audit_id, stage, is_final, verb, request_received, raw) "
        "VALUES ('prod', 'a1', 'ResponseComplete', true, NULL, '2026-01-01 10:00:00.000001', '{}'),"
        " ('prod', 'a2', 'ResponseComplete', true, 'get', '2026-01-01 10:00:00.000002', '{}')"
    )
    insert_as_racing_collectors(store, insert)
    count_by_verb = BY_VERB.format(table="events")
    assert store._client.query(count_by_verb).result_rows == [("get", 2), (None, 2)]
    store.optimize()
    rows = store._client.query(BY_VERB.format(table=PROJECTION_ROWS)).result_rows
    assert rows == [("get", 1), (None, 1)]


def test_retention_deletes_from_it_too(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    _fill(store)
    by_verb = BY_VERB.format(table="events")
    kept = store._client.query(
        "SELECT verb, count() FROM events WHERE is_final AND "
        "request_received >= toDateTime64('2026-01-01 02:30:00', 6, 'UTC') "
        "GROUP BY verb ORDER BY verb"
    ).result_rows
    assert store.delete_older_than(datetime(2026, 1, 1, 2, 30)) > 0
    # The DELETE dropped the projection of the part it changed (with 'rebuild', ClickHouse 26.9
    # kept the deleted rows in it, and this count was 15,000 per verb instead of 5,625).
    assert store._client.query(by_verb).result_rows == kept
    assert store._client.query(by_verb, settings=NO_PROJECTION).result_rows == kept
    assert store._client.query(BY_VERB.format(table=PROJECTION_ROWS)).result_rows == []
    store.optimize()  # a merge rewrites the part, with its projection
    assert _reads_it(plan(store, KIND_BY_VERB.format(where="")))
    assert store._client.query(BY_VERB.format(table=PROJECTION_ROWS)).result_rows == kept


def test_the_migration_adds_it_to_an_older_store(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    _fill(store)
    store._client.command("ALTER TABLE events DROP PROJECTION by_kind")  # as stores made before
    by_verb = BY_VERB.format(table="events")
    before = store._client.query(by_verb).result_rows
    add_projection_as_documented(store, KIND_PROJECTION, "by_kind")
    assert _reads_it(plan(store, KIND_BY_VERB.format(where="")))
    assert store._client.query(BY_VERB.format(table=PROJECTION_ROWS)).result_rows == before


#: ``by_kind`` as stores created before 2026-11-24 have it: the hour before ``is_final``.
HOUR_FIRST = KIND_PROJECTION.replace(
    "ORDER BY cluster, is_final, verb, toStartOfHour(request_received)",
    "ORDER BY cluster, toStartOfHour(request_received), is_final, verb",
)


def test_the_migration_replaces_the_hour_first_order(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    store._client.command("ALTER TABLE events DROP PROJECTION by_kind")
    store._client.command(f"ALTER TABLE events ADD {HOUR_FIRST}")
    _fill(store)
    store.optimize()
    deletes = KIND_BY_VERB.format(where=" AND verb = 'delete'")
    before = plan(store, deletes)
    assert _reads_it(before)
    assert store._client.query(deletes).result_rows[0][1] == 15_000
    for statement in (  # the statements of docs/scale-out.md
        "ALTER TABLE events DROP PROJECTION IF EXISTS by_kind",
        f"ALTER TABLE events ADD {KIND_PROJECTION}",
        "ALTER TABLE events MATERIALIZE PROJECTION by_kind",
    ):
        store._client.command(statement, settings={"mutations_sync": 1})
    after = plan(store, deletes)
    assert _reads_it(after)

    def selected(plan: list[str]) -> int:
        granules = next(line for line in plan if line.startswith("Granules:"))
        return int(granules.removeprefix("Granules:").split("/")[0])

    assert selected(after) < selected(before)
    assert store._client.query(deletes).result_rows[0][1] == 15_000
    by_verb = BY_VERB.format(table="events")
    assert (
        store._client.query(BY_VERB.format(table=PROJECTION_ROWS)).result_rows
        == store._client.query(by_verb, settings=NO_PROJECTION).result_rows
    )
