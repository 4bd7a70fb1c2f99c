"""Property: for random filters, SQL on the store and the Python predicate pick the same rows."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubetrail.query import compile_predicate, run_query
from kubetrail.store import DuckDBStore

KEY = "| fields id, stage, time, cluster"

TEXT_FIELDS = ["verb", "resource", "ns", "user", "name", "uri", "ua", "decision", "sa", "stage"]
MULTI_FIELDS = ["groups", "ip", "requestObject.spec.containers[*].image"]
JSON_FIELDS = ["objectRef.uid", "responseStatus.message", "requestObject.kind"]
NUMBERS = {"code": st.sampled_from([200, 201, 403, 404, 409, 500]), "latency": st.floats(0, 50)}
SAMPLES = [
    "get",
    "list",
    "delete",
    "pods",
    "secrets",
    "default",
    "kube-system",
    "system:admin",
    "system:masters",
    "forbid",
    "allow",
    "ResponseComplete",
    "RequestReceived",
    "::1",
    "10.0.0.1",
    "kubectl",
    "nginx",
    "Pod",
]
ALPHABET = st.sampled_from(list("abcdeklmnopstuvy:-/._%'\\*\"ÉéüΩ✓ \t"))


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("*", "\\*") + '"'


plain_value = st.one_of(
    st.sampled_from(SAMPLES).map(quote),
    st.text(ALPHABET, max_size=6).map(quote),
)
text_value = st.one_of(
    plain_value,
    st.sampled_from(SAMPLES).map(lambda s: quote(s[:2])[:-1] + '*"'),
    st.text(ALPHABET, max_size=4).map(lambda s: quote(s)[:-1] + '*"'),
)
regex = st.sampled_from(["^sys", "s$", "[0-9]+", "(get|list)", "a.c", "^$", "Pod|pod"])


@st.composite
def term(draw: Any) -> str:
    kind = draw(st.sampled_from(["text", "multi", "json", "number", "exists", "bare", "in"]))
    if kind == "number":
        name = draw(st.sampled_from(sorted(NUMBERS)))
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
        return f"{name}{op}{draw(NUMBERS[name])}"
    if kind == "exists":
        return f"exists({draw(st.sampled_from(TEXT_FIELDS + MULTI_FIELDS + JSON_FIELDS))})"
    if kind == "bare":
        return draw(text_value)
    name = draw(
        st.sampled_from(
            {
                "text": TEXT_FIELDS,
                "multi": MULTI_FIELDS,
                "json": JSON_FIELDS,
                "in": TEXT_FIELDS + MULTI_FIELDS,
            }[kind]
        )
    )
    if kind == "in":
        values = draw(st.lists(text_value, min_size=1, max_size=3))
        return f"{name} in ({', '.join(values)})"
    op = draw(st.sampled_from(["=", "!=", ":", "~", "<", ">="]))
    if op == "~":
        return f"{name}~{quote(draw(regex)).replace(chr(92) + '*', '*')}"
    # Wildcards only go with =, !=, : and in; ordering compares take plain values.
    value = draw(plain_value if op in ("<", ">=") else text_value)
    return f"{name}{op}{value}"


def combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, children).map(lambda t: f"({t[0]} or {t[1]})"),
        st.tuples(children, children).map(lambda t: f"{t[0]} and {t[1]}"),
        st.tuples(children, children).map(lambda t: f"{t[0]} {t[1]}"),
        children.map(lambda c: f"not {c}"),
    )


queries = st.recursive(term(), combine, max_leaves=5)


class World:
    """The store and its rows, with a short repr (hypothesis prints its arguments)."""

    def __init__(self, store: DuckDBStore, rows: list[dict[str, Any]]) -> None:
        self.store, self.rows = store, rows

    def __repr__(self) -> str:
        return f"World({len(self.rows)} rows)"


@pytest.fixture(scope="module")
def world(store: DuckDBStore, rows: list[dict[str, Any]]) -> World:
    return World(store, rows)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries)
def test_sql_and_predicate_agree(world: World, text: str) -> None:
    result = run_query(world.store, f"{text} {KEY}", limit=100_000)
    by_sql = Counter(tuple(r) for r in result.rows())
    predicate = compile_predicate(f"{text} {KEY}")  # KEY names stage: every stage counts
    by_python = Counter(
        (r["audit_id"], r["stage"], r["request_received"], r["cluster"])
        for r in world.rows
        if predicate(r)
    )
    assert by_sql == by_python, result.compiled.sql


@settings(max_examples=100, deadline=None)
@given(queries)
def test_counts_agree_with_final_stage_default(world: World, text: str) -> None:
    result = run_query(world.store, f"{text} | stats count()")
    predicate = compile_predicate(text)
    assert result.rows() == [[sum(1 for r in world.rows if predicate(r))]]
