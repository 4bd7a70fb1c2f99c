"""The ``by_time`` projection: the columns of event listings, ordered by time alone
(``clickhouse_schema.TIME_PROJECTION``).

The table's sorting key starts with ``cluster``, so a newest-first listing over all clusters
cannot read the table in order; it reads this projection backwards instead. Locks in that it
exists, that such listings read it in reverse order (the plan is deterministic; the speed is
measured in ``bench/clickhouse_bench.py``), that a listing needing another column and the
aggregations do not, that answers are the same with and without it and under FINAL, and that
merges dropping copies, retention's DELETE and the migration of docs/scale-out.md keep it exact.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from click.testing import CliRunner
from synthetic import (
    CLUSTER_COUNTS,
    LISTING_ROWS,
    add_projection_as_documented,
    counts_around_a_merge,
    fill_listing_rows,
    plan,
    projection_sorting_key,
)

from kubetrail.cli.store import store as store_group
from kubetrail.pipeline import ingest_paths
from kubetrail.query import run_query
from kubetrail.store.clickhouse_schema import TIME_PROJECTION
from testdata import EVENT_FILES

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")

NO_PROJECTION = {"optimize_use_projections": 0}
#: Newest first over all clusters, with a filter that matches every 7th row.
LISTING = (
    "SELECT request_received, cluster, request_uri FROM events "
    "WHERE is_final AND request_uri LIKE '%/secrets/%' ORDER BY request_received DESC LIMIT 100"
)
#: The projection's own rows, whatever ClickHouse would choose for a query.
PROJECTION_ROWS = (
    "SELECT cluster, count() FROM mergeTreeProjection(currentDatabase(), events, by_time) "
    "GROUP BY cluster ORDER BY cluster"
)
#: Listings as users type them (``limit`` covers every match: no ties cut at the limit).
QUERIES = [
    'uri:"/secrets/" | fields time, user, verb, uri',
    "verb=get",
    "code>=400 | fields time, cluster, user, code, uri",
    "stage=* | fields time, stage, user",
    "ns=kube-* | fields time, ns, name, resource",
]


#: The plan with its read order (``Read type: InReverseOrder``).
_ACTIONS = "actions = 1"


def _reads_it_backwards(plan: list[str]) -> bool:
    reads = [i for i, line in enumerate(plan) if line.endswith("ReadFromMergeTree (by_time)")]
    return bool(reads) and plan[reads[0] + 1].endswith("Read type: InReverseOrder")


def _listings(store: Any, settings: dict[str, Any]) -> list[Counter[str]]:
    store.read_settings = settings
    return [Counter(map(repr, run_query(store, text, limit=100_000).rows())) for text in QUERIES]


def test_the_events_table_has_the_projection(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    assert projection_sorting_key(store, "by_time") == ["request_received"]


def test_store_init_prints_it_for_a_dba() -> None:
    for extra in ([], ["--cluster", "prod"]):
        out = CliRunner().invoke(store_group, ["init", "--engine", "clickhouse", "--print", *extra])
        assert out.exit_code == 0, out.output
        assert TIME_PROJECTION in out.output


def test_newest_first_listings_read_it_backwards_others_do_not(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    fill_listing_rows(store)
    store.optimize()  # one part per day: the plan does not depend on merges
    assert _reads_it_backwards(plan(store, LISTING, _ACTIONS))
    compiled = run_query(store, 'uri:"/secrets/" | fields time, user, verb, uri').compiled.sql
    assert _reads_it_backwards(plan(store, compiled, _ACTIONS))
    with_id = LISTING.replace("cluster,", "audit_id,")  # audit_id is not in it
    assert not any("by_time" in line for line in plan(store, with_id, _ACTIONS))
    counts = plan(store, "SELECT verb, count() FROM events WHERE is_final GROUP BY verb", _ACTIONS)
    assert not any("by_time" in line for line in counts)  # by_kind's job
    # The answer: the 100 newest secrets of both clusters, as without the projection.
    rows = store._client.query(LISTING, settings={"final": 0}).result_rows
    assert rows == store._client.query(LISTING, settings=NO_PROJECTION).result_rows
    newest = [n for n in range(LISTING_ROWS - 1, -1, -1) if n % 7 == 0][:100]
    assert [row[1] for row in rows] == ["a" if n % 2 == 0 else "b" for n in newest]


def test_answers_are_the_same_without_it_and_under_final(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    ingest_paths(store, [str(p) for p in EVENT_FILES[:3]], "prod")
    ingest_paths(store, [str(p) for p in EVENT_FILES[3:]], "dev")
    plain = _listings(store, {"final": 0})
    assert all(plain)
    assert plain == _listings(store, {"final": 0, **NO_PROJECTION})
    assert plain == _listings(store, {"final": 1})


def test_merges_that_drop_copies_keep_it_exact(new_clickhouse_store: Any) -> None:
    before, after = counts_around_a_merge(new_clickhouse_store(), PROJECTION_ROWS)
    assert before == [("dev", 2), ("prod", 2)] and after == [("dev", 1), ("prod", 1)]


def test_retention_deletes_from_it_too(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    fill_listing_rows(store)
    cutoff = datetime(2026, 1, 2, 12)  # inside the second of three days
    kept = store._client.query(
        LISTING.replace("ORDER BY", "AND request_received >= '2026-01-02 12:00:00' ORDER BY"),
        settings=NO_PROJECTION,
    ).result_rows
    assert store.delete_older_than(cutoff) > 0
    # The DELETE dropped the projection of the parts it changed: they are read from the table.
    assert store._client.query(LISTING).result_rows == kept
    store.optimize()  # a merge rewrites the parts, with their projections
    assert _reads_it_backwards(plan(store, LISTING, _ACTIONS))
    assert store._client.query(LISTING).result_rows == kept
    left = store._client.query(CLUSTER_COUNTS).result_rows
    assert store._client.query(PROJECTION_ROWS).result_rows == left


def test_the_migration_adds_it_to_an_older_store(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    fill_listing_rows(store)
    store._client.command("ALTER TABLE events DROP PROJECTION by_time")  # as stores made before
    store.optimize()
    before = store._client.query(LISTING).result_rows
    assert not _reads_it_backwards(plan(store, LISTING, _ACTIONS))
    add_projection_as_documented(store, TIME_PROJECTION, "by_time")
    assert _reads_it_backwards(plan(store, LISTING, _ACTIONS))
    assert store._client.query(LISTING).result_rows == before
    left = store._client.query(CLUSTER_COUNTS).result_rows
    assert store._client.query(PROJECTION_ROWS).result_rows == left
