"""The compiled SQL CASE agrees with the reference evaluator (DuckDB, in memory)."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_strategies import events, policies, to_rows
from sqlglot import exp
from test_policy_conformance import CASES, _policy

from kubetrail.policy.compile import compile_sql, rule_index_query
from kubetrail.policy.evaluate import evaluate_event, match_index
from kubetrail.policy.model import Policy
from kubetrail.policy.request import Request


@pytest.fixture(scope="module")
def con() -> Any:
    c = duckdb.connect()
    yield c
    c.close()


def run_sql(con: Any, policy: Policy, evs: list[dict[str, Any]]) -> list[int | None]:
    table = to_rows(evs)
    con.register("events", table)
    sql = rule_index_query(policy, [exp.column("idx")]).sql("duckdb")
    rows = con.execute(sql + " ORDER BY idx").fetchall()
    con.unregister("events")
    return [r[1] for r in rows]


def _event_of(req: Request) -> dict[str, Any]:
    event: dict[str, Any] = {
        "auditID": "a",
        "stage": "ResponseComplete",
        "verb": req.verb,
        "requestURI": req.path,
    }
    event["user"] = {} if req.user is None else {"username": req.user, "groups": list(req.groups)}
    if req.is_resource:
        ref = {"resource": req.resource, "apiVersion": "v1"}
        for key, value in (
            ("apiGroup", req.api_group),
            ("subresource", req.subresource),
            ("namespace", req.namespace),
            ("name", req.name),
        ):
            if value:
                ref[key] = value
        event["objectRef"] = ref
    return event


def test_conformance_table_in_sql(con: Any) -> None:
    for case, rules, req, expected in CASES:
        got = run_sql(con, _policy(rules), [_event_of(req)])
        assert got == [expected], case


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies, evs=st.lists(events(), min_size=1, max_size=25))
def test_compiled_matches_reference(con: Any, policy: Policy, evs: list[dict[str, Any]]) -> None:
    expected = [evaluate_event(policy, e).rule for e in evs]
    assert run_sql(con, policy, evs) == expected


def test_values_are_literals_not_pasted() -> None:
    p = _policy([{"level": "None", "users": ["x' OR 1=1 --"], "nonResourceURLs": ["/a'b*"]}])
    sql = compile_sql(p)
    assert "'x'' OR 1=1 --'" in sql and "'/a''b'" in sql


def test_clickhouse_dialect_renders() -> None:
    p = _policy(
        [
            {"level": "None", "userGroups": ["g"], "nonResourceURLs": ["/healthz*"]},
            {"level": "Metadata", "resources": [{"group": "apps", "resources": ["*/scale"]}]},
        ]
    )
    sql = compile_sql(p, "clickhouse")
    assert "hasAny(user_groups" in sql and "startsWith(" in sql


def test_empty_policy_is_null(con: Any) -> None:
    assert run_sql(con, Policy(), [_event_of(Request(user="a", verb="get", path="/"))]) == [None]


def test_match_index_agrees_on_catch_all(con: Any) -> None:
    p = _policy([{"level": "Metadata"}, {"level": "None"}])
    ev = _event_of(Request(user=None, verb="get", path="/healthz"))
    assert run_sql(con, p, [ev]) == [0] == [match_index(p, Request(verb="get", path="/healthz"))]
