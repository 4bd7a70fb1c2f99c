"""Normalisation: every column, checked against values read from the JSON independently."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from kubetrail.model import EVENT_SCHEMA, decode_records, normalize
from kubetrail.sources.files import iter_records
from testdata import EVENT_FILES, read_json_lines


def _table(path):
    chunk = decode_records(iter_records(path), str(path))
    return normalize(chunk, cluster="c1", source=str(path), batch_id="b1")


def _time(text: str | None):
    if not text:
        return None
    text = text.replace(" ", "T").rstrip("Z")
    if "." in text:
        head, frac = text.split(".")
        text = f"{head}.{frac[:6].ljust(6, '0')}"
    return datetime.fromisoformat(text)


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: p.name)
def test_columns_match_the_json(path):
    result = _table(path)
    assert result.rejections == []
    table = result.table
    assert table.schema == EVENT_SCHEMA
    rows = table.to_pylist()
    events = read_json_lines(path)
    assert len(rows) == len(events)
    for row, event in zip(rows, events, strict=True):
        user = event.get("user") or {}
        ref = event.get("objectRef") or {}
        status = event.get("responseStatus") or {}
        notes = event.get("annotations") or {}
        received = event.get("requestReceivedTimestamp") or event.get("timestamp")
        staged = event.get("stageTimestamp") or event.get("timestamp")
        expected = {
            "cluster": "c1",
            "audit_id": event["auditID"],
            "stage": event["stage"],
            "level": event.get("level"),
            "verb": event["verb"],
            "request_uri": event["requestURI"],
            "username": user.get("username") or None,
            "user_groups": user.get("groups") or None,
            "impersonated_user": (event.get("impersonatedUser") or {}).get("username"),
            "source_ips": event.get("sourceIPs"),
            "user_agent": event.get("userAgent"),
            "api_group": ref.get("apiGroup") or None,
            "resource": ref.get("resource"),
            "subresource": ref.get("subresource"),
            "namespace": ref.get("namespace") or None,
            "name": ref.get("name") or None,
            "response_code": status.get("code"),
            "decision": notes.get("authorization.k8s.io/decision"),
            "decision_reason": notes.get("authorization.k8s.io/reason"),
            "request_received": _time(received),
            "stage_time": _time(staged),
            "event_version": event["apiVersion"],
            "source": str(path),
            "batch_id": "b1",
        }
        assert {k: row[k] for k in expected} == expected
        latency = (expected["stage_time"] - expected["request_received"]).total_seconds() * 1000
        assert row["latency_ms"] == pytest.approx(latency)
        assert json.loads(row["raw"])["auditID"] == event["auditID"]


def test_derived_columns_on_a_real_exec_and_a_service_account():
    path = next(p for p in EVENT_FILES if p.name.startswith("crowdsec"))
    rows = _table(path).table.to_pylist()
    [exec_row] = [r for r in rows if r["subresource"] == "exec"]
    assert exec_row["command"] == "/bin/bash"
    assert all(r["command"] is None for r in rows if r["subresource"] != "exec")
    path = next(p for p in EVENT_FILES if p.name.startswith("sysdiglabs"))
    sa_rows = [r for r in _table(path).table.to_pylist() if r["actor_kind"] == "serviceaccount"]
    assert sa_rows
    for row in sa_rows:
        assert row["username"] == f"system:serviceaccount:{row['sa_namespace']}:{row['sa_name']}"


def test_stage_finality_counts_requests_once():
    path = next(p for p in EVENT_FILES if p.name == "audit2rbac-demo-v1beta1-original.jsonl")
    rows = _table(path).table.to_pylist()
    final = [r["audit_id"] for r in rows if r["is_final"]]
    assert len(final) == len(set(final))
    assert {r["stage"] for r in rows if r["is_final"]} == {"ResponseComplete"}


def test_times_without_offset_or_with_nanoseconds():
    base = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "auditID": "1",
        "stage": "ResponseComplete",
        "verb": "get",
        "requestURI": "/healthz",
    }
    lines = [
        dict(base, requestReceivedTimestamp="2024-11-13 18:34:10.595141000"),
        dict(base, auditID="2", requestReceivedTimestamp="2024-11-13T20:34:10.123456789+02:00"),
        dict(base, auditID="3", requestReceivedTimestamp="yesterday"),
    ]
    chunk = decode_records([(i, json.dumps(e).encode()) for i, e in enumerate(lines, 1)], "t")
    result = normalize(chunk, cluster="c", source="t", batch_id="b")
    assert result.table.column("request_received").to_pylist() == [
        datetime(2024, 11, 13, 18, 34, 10, 595141),
        datetime(2024, 11, 13, 18, 34, 10, 123456),
    ]
    [bad] = result.rejections
    assert (bad.line, bad.reason) == (3, "invalid timestamp")


def test_empty_chunk_gives_an_empty_table():
    chunk = decode_records([], "t")
    table = normalize(chunk, cluster="c", source="t", batch_id="b").table
    assert table.num_rows == 0 and table.schema == EVENT_SCHEMA
