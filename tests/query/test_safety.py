"""Safety: hostile values go through every operator as literals and match exactly themselves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from kubetrail.model.schema import EVENT_SCHEMA
from kubetrail.query import compile, compile_predicate, run_query
from kubetrail.store import DuckDBStore, open_store
from kubetrail.store.base import BatchMeta

NASTY = [
    "a'b",
    "'; DROP TABLE events; --",
    "x' OR '1'='1",
    '"; SELECT 1; --',
    "/* comment */",
    "-- dash",
    "back\\slash",
    "per%cent_under",
    "$1 ? :name",
    "ünïcødé ✓ Ω 😀",
    "new\nline",
    "nul-ish \\0 \\x00",
]


def quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("*", "\\*") + '"'


def row(i: int, user: str) -> dict[str, Any]:
    values: dict[str, Any] = dict.fromkeys(EVENT_SCHEMA.names)
    values.update(
        cluster="c",
        audit_id=f"id-{i}",
        stage="ResponseComplete",
        is_final=True,
        verb="get",
        username=user,
        request_uri=user,
        name=user,
        user_groups=[user, "system:authenticated"],
        request_received=pa.scalar(1_700_000_000_000_000 + i, pa.timestamp("us")).as_py(),
        raw=json.dumps({"annotations": {"note": user}}, ensure_ascii=False),
    )
    return values


@pytest.fixture(scope="module")
def nasty_store() -> Iterator[DuckDBStore]:
    store = open_store(":memory:")
    rows = [row(i, user) for i, user in enumerate(NASTY)]
    table = pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)
    store.write_batch(table, BatchMeta("c", "test", "b1"))
    yield store
    store.close()


OPERATORS = [
    "user={v}",
    "user!={v}",
    "user:{v}",
    "uri={v}",
    "name<={v}",
    "groups={v}",
    "groups:{v}",
    "user in ({v}, nobody)",
    "annotations.note={v}",
    "annotations.note:{v}",
    "{v}",
]


@pytest.mark.parametrize("template", OPERATORS)
@pytest.mark.parametrize("value", NASTY)
def test_values_stay_literals(nasty_store: DuckDBStore, template: str, value: str) -> None:
    text = template.format(v=quote(value)) + " | fields id"
    result = run_query(nasty_store, text)
    expected = {
        f"id-{i}" for i, r in enumerate(NASTY) if compile_predicate(text)(_rows(nasty_store)[i])
    }
    assert {r[0] for r in result.rows()} == expected
    if not template.startswith(("user!=", "name<=")):
        assert f"id-{NASTY.index(value)}" in expected  # the value finds its own row
    assert nasty_store.count() == len(NASTY)  # nothing dropped, nothing injected
    for dialect in ("duckdb", "clickhouse"):
        sql = compile(text, dialect).sql
        assert sql.count(";") == 0 or ";" in value


_CACHE: dict[int, list[dict[str, Any]]] = {}


def _rows(store: DuckDBStore) -> list[dict[str, Any]]:
    key = id(store)
    if key not in _CACHE:
        _CACHE[key] = store.query("SELECT * FROM events ORDER BY audit_id").to_pylist()
        _CACHE[key].sort(key=lambda r: int(r["audit_id"].split("-")[1]))
    return _CACHE[key]


def test_regex_values_are_literals(nasty_store: DuckDBStore) -> None:
    result = run_query(nasty_store, 'user~"\'; DROP" | fields id')
    assert [r[0] for r in result.rows()] == ["id-1"]
