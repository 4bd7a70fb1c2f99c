# ruff: noqa: E501 - SQL snapshots are kept on one line each
"""Compiler tests: the SQL text per dialect (snapshots), and what the compiler refuses."""

from __future__ import annotations

import pytest

from kubetrail.errors import ParseError, UnsupportedError
from kubetrail.query import compile

SNAPSHOTS = {
    "code>=400 ns=prod-* | stats count() by user | sort -count | head 5": {
        "duckdb": 'SELECT username AS "user", COUNT(*) AS "count" FROM events WHERE is_final = TRUE AND (response_code >= 400 AND namespace LIKE \'prod-%\') GROUP BY username ORDER BY COUNT(*) DESC LIMIT 5',
        "clickhouse": 'SELECT username AS "user", COUNT(*) AS "count" FROM events WHERE is_final = TRUE AND (response_code >= 400 AND namespace LIKE \'prod-%\') GROUP BY username ORDER BY COUNT(*) DESC LIMIT 5',
    },
    'name="50%_off" | fields name': {
        "duckdb": "SELECT name AS \"name\" FROM events WHERE is_final = TRUE AND name = '50%_off' ORDER BY request_received DESC",
        "clickhouse": "SELECT name AS \"name\" FROM events WHERE is_final = TRUE AND name = '50%_off' ORDER BY request_received DESC",
    },
    'name="50%*" | fields name': {
        "duckdb": "SELECT name AS \"name\" FROM events WHERE is_final = TRUE AND name LIKE '50\\%%' ESCAPE '\\' ORDER BY request_received DESC",
        "clickhouse": "SELECT name AS \"name\" FROM events WHERE is_final = TRUE AND name LIKE '50\\\\%%' ORDER BY request_received DESC",
    },
    "groups=system:masters not verb=get | fields id": {
        "duckdb": "SELECT audit_id AS \"id\" FROM events WHERE is_final = TRUE AND (LIST_CONTAINS(user_groups, 'system:masters') AND NOT COALESCE(verb = 'get', FALSE)) ORDER BY request_received DESC",
        "clickhouse": "SELECT audit_id AS \"id\" FROM events WHERE is_final = TRUE AND (has(user_groups, 'system:masters') AND NOT COALESCE(verb = 'get', FALSE)) ORDER BY request_received DESC",
    },
    'uri~"^/api" | timechart span=5m p95(latency)': {
        "duckdb": "SELECT TIME_BUCKET(INTERVAL '300' SECOND, request_received) AS \"time\", QUANTILE_CONT(latency_ms, 0.95) AS \"p95(latency)\" FROM events WHERE is_final = TRUE AND REGEXP_MATCHES(request_uri, '^/api') GROUP BY TIME_BUCKET(INTERVAL '300' SECOND, request_received) ORDER BY TIME_BUCKET(INTERVAL '300' SECOND, request_received)",
        "clickhouse": 'SELECT toStartOfInterval(request_received, INTERVAL 300000 MILLISECOND) AS "time", quantileExactInclusive(0.95)(latency_ms) AS "p95(latency)" FROM events WHERE is_final = TRUE AND match(request_uri, \'^/api\') GROUP BY toStartOfInterval(request_received, INTERVAL 300000 MILLISECOND) ORDER BY toStartOfInterval(request_received, INTERVAL 300000 MILLISECOND)',
    },
    'annotations."a.b/c"=x | fields id': {
        "duckdb": 'SELECT audit_id AS "id" FROM events WHERE is_final = TRUE AND JSON_EXTRACT_STRING(raw, \'$."annotations"."a.b/c"\') = \'x\' ORDER BY request_received DESC',
        "clickhouse": "SELECT audit_id AS \"id\" FROM events WHERE is_final = TRUE AND multiIf(JSONType(raw, 'annotations', 'a.b/c') = 'String', JSONExtractString(raw, 'annotations', 'a.b/c'), JSONType(raw, 'annotations', 'a.b/c') IN ('Null'), CAST(NULL AS Nullable(String)), NOT JSONHas(raw, 'annotations', 'a.b/c'), CAST(NULL AS Nullable(String)), JSONExtractRaw(raw, 'annotations', 'a.b/c')) = 'x' ORDER BY request_received DESC",
    },
}


@pytest.mark.parametrize("text", sorted(SNAPSHOTS))
@pytest.mark.parametrize("dialect", ["duckdb", "clickhouse"])
def test_snapshot(text: str, dialect: str) -> None:
    assert compile(text, dialect).sql == SNAPSHOTS[text][dialect]


def test_sort_after_head_uses_a_subquery() -> None:
    sql = compile("verb=get | head 10 | sort user | fields user").sql
    assert sql.startswith('SELECT "user" AS "user" FROM (SELECT')
    assert "LIMIT 10) AS q ORDER BY" in sql


def test_limit_caps_head() -> None:
    assert compile("| head 50", limit=20).sql.endswith("LIMIT 20")
    assert compile("| head 5", limit=20).sql.endswith("LIMIT 5")


def test_stage_named_in_pipe_turns_default_off() -> None:
    assert "is_final" not in compile("| stats count() by stage").sql
    assert "is_final = TRUE" in compile("| stats count() by verb").sql


def test_refusals() -> None:
    with pytest.raises(UnsupportedError):
        compile("| stats count() | top user")
    with pytest.raises(UnsupportedError):
        compile("verb=get", "postgres")
    with pytest.raises(ParseError, match="no output column 'usr'"):
        compile("| stats count() by user | sort usr")


def test_every_default_stage_filter_is_a_literal() -> None:
    sql = compile('user="x\'; DROP TABLE events; --"').sql
    assert "'x''; DROP TABLE events; --'" in sql
