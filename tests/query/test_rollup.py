"""The ClickHouse dialect's rewrite of counts over time onto the minute
(``query/dialects/rollup.py``): what it rewrites, and that everything else compiles as before.

Whether ClickHouse then reads the ``by_minute`` projection, and that the answers stay the
embedded store's, is tested against a real server in ``tests/clickhouse/test_minute_projection.py``.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlglot import exp

from kubetrail.query import compile_query
from kubetrail.query.dialects import ClickHouse
from kubetrail.query.dialects.rollup import minute_of, minute_rollup
from kubetrail.store.clickhouse_schema import MINUTE_OF_TIME, MINUTE_PROJECTION

MINUTE = MINUTE_OF_TIME
ON = datetime(2026, 1, 1, 12, 7)
OFF = datetime(2026, 1, 1, 12, 7, 0, 1)


def _sql(text: str, **scope: object) -> str:
    return compile_query(text, "clickhouse", **scope).sql  # type: ignore[arg-type]


def test_the_rewrite_writes_the_minute_as_the_projection_keys_it() -> None:
    # ClickHouse matches a projection's key by expression: the three must render the same.
    time = exp.column("request_received")
    assert minute_of(time).sql(dialect="clickhouse") == MINUTE_OF_TIME
    assert ClickHouse().time_bucket(time, 60).sql(dialect="clickhouse") == MINUTE_OF_TIME
    assert f"{MINUTE_OF_TIME}, count() GROUP BY" in MINUTE_PROJECTION


def test_a_chart_on_whole_minutes_is_counted_by_the_minute() -> None:
    sql = _sql("| timechart span=15m count() by verb", time_from=ON, time_to=ON, cluster="a")
    bucket = f"toStartOfInterval({MINUTE}, INTERVAL 900000 MILLISECOND)"
    assert sql == (
        f'SELECT {bucket} AS "time", verb AS "verb", COUNT(*) AS "count" FROM events '
        f"WHERE is_final = TRUE AND cluster = 'a' "
        f"AND {MINUTE} >= toDateTime64('2026-01-01 12:07:00.000000', 6, 'UTC') "
        f"AND {MINUTE} < toDateTime64('2026-01-01 12:07:00.000000', 6, 'UTC') "
        f"GROUP BY {bucket}, verb ORDER BY {bucket}, verb"
    )


def test_a_one_minute_bucket_is_the_minute_itself() -> None:
    sql = _sql("| timechart span=1m count()", time_from=ON)
    assert sql.startswith(f'SELECT {MINUTE} AS "time"') and f"{MINUTE} >= " in sql


@pytest.mark.parametrize(
    ("text", "scope"),
    [
        ("| timechart span=15m count() by verb", {"time_from": OFF}),  # a bound off the minute
        ("| timechart span=30s count()", {}),  # a bucket shorter than a minute
        ("| timechart span=5m count() by user", {}),  # a column outside the projection
        ("| timechart span=5m dc(verb)", {}),  # not a count of rows
        ("| stats count(user) by verb", {}),
        ('time>"2026-01-01T12:07:00Z" | stats count()', {}),  # > is not exact on the minute
        ('time="2026-01-01T12:07:00Z" | stats count()', {}),
        ("verb=get", {"time_from": ON}),  # a listing
        ("| stats count() by verb | head 2 | sort -count", {"time_from": ON}),  # a subquery
    ],
)
def test_anything_else_compiles_as_before(text: str, scope: dict[str, object]) -> None:
    compiled = compile_query(text, "clickhouse", **scope)  # type: ignore[arg-type]
    assert minute_rollup(compiled.expression) is compiled.expression
    assert "60000 MILLISECOND) >=" not in compiled.sql


def test_the_embedded_store_is_not_rewritten() -> None:
    sql = compile_query("| timechart span=15m count() by verb", "duckdb", time_from=ON).sql
    assert "request_received >= " in sql


def test_rewriting_twice_changes_nothing() -> None:
    compiled = compile_query("| timechart span=5m count() by verb", "clickhouse", time_from=ON)
    rewritten = minute_rollup(compiled.expression)
    assert isinstance(rewritten, exp.Select)
    assert rewritten.sql(dialect="clickhouse") == compiled.sql
