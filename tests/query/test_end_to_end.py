"""End to end on the real events: answers checked against plain Python over the JSON lines."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kubetrail.cli.query import query
from kubetrail.pipeline import ingest_paths
from kubetrail.query import run_query
from kubetrail.store import DuckDBStore, open_store
from testdata import EVENT_FILES


def final_events() -> list[dict[str, Any]]:
    """Every distinct request's final event, read with the standard library only."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for path in EVENT_FILES:
        for line in path.read_text().splitlines():
            if line.strip():
                event = json.loads(line)
                when = event.get("requestReceivedTimestamp") or event.get("timestamp")
                seen.setdefault((event["auditID"], event["stage"], when), event)
    return [e for e in seen.values() if e["stage"] in ("ResponseComplete", "Panic")]


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return final_events()


def test_count_by_verb(store: DuckDBStore, events: list[dict[str, Any]]) -> None:
    result = run_query(store, "| stats count() by verb")
    assert {v: c for v, c in result.rows()} == Counter(e["verb"] for e in events)


def test_top_users_among_403(store: DuckDBStore, events: list[dict[str, Any]]) -> None:
    result = run_query(store, "code=403 | top user 3")
    counts = Counter(
        e["user"].get("username") for e in events if e.get("responseStatus", {}).get("code") == 403
    )
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert [(u, c) for u, c, _ in result.rows()] == expected
    assert result.columns == ("user", "count", "percent")


def test_deletes_by_resource_and_user(store: DuckDBStore, events: list[dict[str, Any]]) -> None:
    result = run_query(store, 'verb="delete" groupby objectref_resource,username')
    counts = Counter(
        (e.get("objectRef", {}).get("resource"), e["user"].get("username"))
        for e in events
        if e["verb"] == "delete"
    )
    assert {(r, u): c for r, u, c in result.rows()} == counts


def test_uri_prefix_and_fields(store: DuckDBStore, events: list[dict[str, Any]]) -> None:
    result = run_query(
        store, 'requestURI:"/api/v1/namespaces/*/pods*" and verb=get | fields id, user, ip'
    )
    expected = {
        e["auditID"]
        for e in events
        if e["verb"] == "get"
        and e["requestURI"].lower().startswith("/api/v1/namespaces/")
        and "/pods" in e["requestURI"].lower().split("/namespaces/", 1)[1]
    }
    assert {r[0] for r in result.rows()} == expected
    assert expected


def test_privileged_containers(store: DuckDBStore, events: list[dict[str, Any]]) -> None:
    result = run_query(
        store, "requestObject.spec.containers[*].securityContext.privileged=true | fields id"
    )
    expected = {
        e["auditID"]
        for e in events
        if any(
            (c.get("securityContext") or {}).get("privileged") is True
            for c in ((e.get("requestObject") or {}).get("spec") or {}).get("containers") or []
            if isinstance(c, dict)
        )
    }
    assert {r[0] for r in result.rows()} == expected
    assert expected


def test_naming_stage_sees_every_stage(store: DuckDBStore) -> None:
    every = run_query(store, "stage=* | stats count()").rows()[0][0]
    assert every == store.count()
    finals = run_query(store, "| stats count()").rows()[0][0]
    assert finals < every


def test_time_range_and_cluster(tmp_path: Path) -> None:
    db = open_store(tmp_path / "t.duckdb")
    ingest_paths(db, [str(EVENT_FILES[0])], "prod")
    ingest_paths(db, [str(EVENT_FILES[1])], "dev")
    from datetime import datetime

    total = run_query(db, "| stats count()").rows()[0][0]
    prod = run_query(db, "| stats count()", cluster="prod").rows()[0][0]
    dev = run_query(db, "| stats count()", cluster="dev").rows()[0][0]
    assert prod + dev == total and prod and dev
    early = run_query(db, "| stats count()", time_to=datetime(2017, 9, 11, 19, 56)).rows()[0][0]
    late = run_query(db, "| stats count()", time_from=datetime(2017, 9, 11, 19, 56)).rows()[0][0]
    assert early + late == total
    db.close()


def test_cli_formats(tmp_path: Path) -> None:
    path = tmp_path / "cli.duckdb"
    db = open_store(path)
    ingest_paths(db, [str(p) for p in EVENT_FILES])
    db.close()
    runner = CliRunner()
    out = runner.invoke(
        query, ["decision=forbid | top user", "--db", str(path), "--format", "json"]
    )
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert set(payload) == {"columns", "rows", "elapsed_ms"}
    assert payload["columns"] == ["user", "count", "percent"]
    assert all(len(r) == 3 for r in payload["rows"]) and payload["rows"]

    out = runner.invoke(
        query, ["verb=get", "--db", str(path), "--format", "ndjson", "--limit", "3"]
    )
    lines = [json.loads(line) for line in out.output.splitlines()]
    assert len(lines) == 3 and lines[0]["time"].endswith("Z")

    out = runner.invoke(query, ["| groupby verb", "--db", str(path), "--format", "csv"])
    assert out.output.splitlines()[0] == "verb,count"

    out = runner.invoke(query, ["exec", "--db", str(path)])
    assert out.exit_code == 0 and "test-pod" in out.output

    out = runner.invoke(query, ["code=403", "--db", str(path), "--explain"])
    assert out.exit_code == 0 and "response_code = 403" in out.output

    out = runner.invoke(query, ["code=403", "--explain", "--dialect", "clickhouse"])
    assert out.exit_code == 0 and "LIMIT" not in out.output

    out = runner.invoke(query, ["usr=bob", "--db", str(path)])
    assert out.exit_code == 2 and "did you mean 'user'" in out.output and "^^^" in out.output

    out = runner.invoke(query, ["verb=get", "--db", str(tmp_path / "missing.duckdb")])
    assert out.exit_code == 2 and "no store" in out.output

    out = runner.invoke(query, ["verb=get", "--db", str(path), "--since", "1x"])
    assert out.exit_code == 2
