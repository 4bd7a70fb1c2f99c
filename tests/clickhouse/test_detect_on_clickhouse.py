"""Scheduled rules on ClickHouse: two collectors write halves of a burst into one database and
the threshold rule, run against the store, sees the whole burst; first-seen and replay too."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from kubetrail.detect.loader import load_ruleset
from kubetrail.detect.replay import replay
from kubetrail.detect.scheduled import first_seen_matches, threshold_matches
from kubetrail.pipeline import ingest_paths

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")

RULES = load_ruleset()
END = datetime(2024, 5, 10, 12, 0)


def _event(
    audit_id: str,
    t: datetime,
    *,
    user: str = "bob",
    code: int = 403,
    ip: str = "203.0.113.7",
    sub: str | None = None,
) -> str:
    ref = {
        "resource": "secrets" if sub is None else "pods",
        "namespace": "shop",
        "apiVersion": "v1",
    }
    if sub:
        ref |= {"subresource": sub, "name": "web"}
    stamp = t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(
        {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": audit_id,
            "stage": "ResponseComplete",
            "verb": "create" if sub else "list",
            "requestURI": "/api/v1/namespaces/shop/"
            + ("pods/web/exec?command=id" if sub else "secrets"),
            "user": {"username": user, "groups": ["system:authenticated"]},
            "sourceIPs": [ip],
            "userAgent": "kubectl/v1.30.2",
            "objectRef": ref,
            "responseStatus": {"code": code},
            "requestReceivedTimestamp": stamp,
            "stageTimestamp": stamp,
        }
    )


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_threshold_holds_across_collectors(new_clickhouse_store, tmp_path) -> None:
    first = new_clickhouse_store()
    second = new_clickhouse_store(database=first.database)
    start = END - timedelta(minutes=3)
    burst = [_event(f"d{i}", start + timedelta(seconds=5 * i)) for i in range(24)]
    ingest_paths(first, [_write(tmp_path / "a.jsonl", burst[::2])], "prod")
    ingest_paths(second, [_write(tmp_path / "b.jsonl", burst[1::2])], "prod")
    rule = RULES.get("k8s.auth.denied_burst")
    for store in (first, second):
        (match,) = threshold_matches(store, rule, END - timedelta(minutes=5), END)
        assert match.key == "bob" and match.count == 24 and len(match.audit_ids) == 24
    # Neither half alone reaches the threshold of 20.
    lone = new_clickhouse_store()
    ingest_paths(lone, [_write(tmp_path / "c.jsonl", burst[::2])], "prod")
    assert threshold_matches(lone, rule, END - timedelta(minutes=5), END) == []


def test_first_seen_and_replay_on_clickhouse(new_clickhouse_store, tmp_path) -> None:
    store = new_clickhouse_store()
    lines = [
        _event(f"h{d}", END - timedelta(days=d), user="alice@example.com", code=200, ip="10.0.0.1")
        for d in range(1, 9)
    ]
    lines.append(
        _event(
            "new", END + timedelta(minutes=1), user="alice@example.com", code=200, ip="198.51.100.4"
        )
    )
    lines.append(
        _event(
            "x1",
            END + timedelta(minutes=2),
            user="alice@example.com",
            code=101,
            ip="10.0.0.1",
            sub="exec",
        )
    )
    ingest_paths(store, [_write(tmp_path / "h.jsonl", lines)], "prod")
    rule = RULES.get("k8s.human.new_source_ip")
    (match,) = first_seen_matches(store, rule, END, END + timedelta(hours=1))
    assert match.audit_ids == ("new",)
    alerts = replay(store, RULES.enabled, END, END + timedelta(hours=1))
    assert "k8s.pod.exec" in {a.rule for a in alerts}
