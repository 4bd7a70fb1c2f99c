"""The same queries on both engines, on the same events, give the same answers.

Every answer is compared row by row, in order (each query orders its rows completely, or is
compared as a multiset when its order has ties). Floats are compared to 1e-9 relative: the
engines add in different orders.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Any

import pyarrow as pa
import pytest

from kubetrail.pipeline import ingest_paths
from kubetrail.query import run_query
from kubetrail.store import DuckDBStore, open_store
from kubetrail.store.clickhouse import ClickHouseStore
from testdata import EVENT_FILES

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")


ORDERED = [
    "| stats count() by verb",
    "| stats count(), dc(user), min(time), max(time), avg(latency), sum(code) by verb, resource",
    "| stats p50(latency), p90(latency), p95(latency), p99(latency), count(ns) by actor",
    "code>=400 | stats count() by user | sort -count, user | head 5",
    'verb="delete" groupby objectref_resource,username',
    "decision=forbid | top user",
    "| rare verb 3",
    "| top resource 5",
    "| timechart span=1h count() by verb",
    'uri~"^/api" | timechart span=5m p95(latency)',
    "| timechart span=1d dc(ip)",
    "stage=* | stats count() by stage, level",
    "| stats count() by ua | sort ua",
    "| stats min(name), max(uri), count(reason) by code",
    "actor=serviceaccount | stats count() by sa, sa.namespace",
    "groups=system:masters | stats count() by user",
]
UNORDERED = [
    'requestURI:"/api/v1/namespaces/*/pods*" and verb=get | fields id, user, ip, time',
    "requestObject.spec.containers[*].securityContext.privileged=true | fields id, name",
    "exists(impersonated) | fields id, impersonated, impersonated_groups",
    "not verb in (get, list, watch) and ns=kube-* | fields id, verb, ns, code",
    'user:"system:serviceaccount:*" and code!=200 | fields id, user, code, latency',
    "exec | fields id, command, uri",
    "SYSTEM | fields id, user",
    'annotations."authorization.k8s.io/decision"=allow | fields id, decision, reason',
    "requestObject.kind=Pod or responseObject.kind=Status | fields id, requestObject.kind",
    'ip in ("10.*", "::1") | fields id, ip',
    'time>="2024-01-01T00:00:00Z" | fields id, time, cluster',
    "latency>100 and latency<=2000 | fields id, latency",
    "not exists(ns) | fields id, uri, group, version",
    'name="*-*" and resource!=secrets | fields id, name, resource',
    "responseStatus.code>=400 | fields id, responseStatus.message",
    "| head 20 | fields id, stage",
]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _family(kind: pa.DataType) -> str:
    """Types up to width: DuckDB sums integers to HUGEINT (decimal128), ClickHouse to Int64."""
    if pa.types.is_integer(kind) or (pa.types.is_decimal(kind) and kind.scale == 0):
        return "integer"
    return str(kind)


def _key(row: list[Any]) -> str:
    return repr([round(v, 6) if isinstance(v, float) else v for v in row])


@pytest.mark.parametrize("text", ORDERED)
def test_ordered_answers_agree(
    text: str, store: ClickHouseStore, duckdb_store: DuckDBStore
) -> None:
    ours, theirs = run_query(store, text), run_query(duckdb_store, text)
    assert ours.columns == theirs.columns
    assert list(map(_family, ours.table.schema.types)) == list(
        map(_family, theirs.table.schema.types)
    )
    assert _same(ours.rows(), theirs.rows()), ours.compiled.sql
    assert ours.rows(), "the query should find something"


@pytest.mark.parametrize("text", UNORDERED)
def test_listings_agree(text: str, store: ClickHouseStore, duckdb_store: DuckDBStore) -> None:
    ours = run_query(store, text, limit=100_000)
    theirs = run_query(duckdb_store, text, limit=100_000)
    assert ours.columns == theirs.columns
    assert Counter(map(_key, ours.rows())) == Counter(map(_key, theirs.rows())), ours.compiled.sql


def test_time_range_and_cluster(clickhouse_url: str) -> None:
    """The query suite's two-cluster test, on both engines at once."""
    ch = ClickHouseStore(clickhouse_url, database="kt_two_clusters")
    dk = open_store(":memory:")
    try:
        for db in (ch, dk):
            ingest_paths(db, [str(EVENT_FILES[0])], "prod")
            ingest_paths(db, [str(EVENT_FILES[1])], "dev")
        cut = datetime(2017, 9, 11, 19, 56)
        for kwargs in (
            {},
            {"cluster": "prod"},
            {"cluster": "dev"},
            {"time_to": cut},
            {"time_from": cut},
        ):
            assert (
                run_query(ch, "| stats count()", **kwargs).rows()
                == run_query(dk, "| stats count()", **kwargs).rows()
            )
        assert ch.count("prod") == dk.count("prod") and ch.count() == dk.count()
        assert list(ch.export("dev")) == list(dk.export("dev"))
    finally:
        ch.query("DROP DATABASE kt_two_clusters")
        ch.close()
        dk.close()


def test_export_and_stats_agree(store: ClickHouseStore, duckdb_store: DuckDBStore) -> None:
    assert list(store.export()) == list(duckdb_store.export())
    assert store.stats() == duckdb_store.stats()
