"""Threshold, first-seen and silence rules against a store; the detector that stores alerts."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from rule_cases import CASES, SA, event, lines, numbered

from kubetrail.detect.alertstore import list_alerts
from kubetrail.detect.detector import Detector
from kubetrail.detect.loader import load_ruleset
from kubetrail.detect.replay import backtest, replay
from kubetrail.detect.scheduled import first_seen_matches, silence_matches, threshold_matches
from kubetrail.pipeline import ingest_paths
from kubetrail.store import DuckDBStore

RULES = load_ruleset(variables={"watched_secrets": ["db-admin"]})
END = datetime(2024, 5, 10, 12, 0)


def _at(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ingest(store: DuckDBStore, tmp_path: Path, events: list[dict], cluster: str = "prod"):
    for i, e in enumerate(events):
        e.setdefault("auditID", f"{cluster}-{i}-{e['requestReceivedTimestamp']}")
        if not e["auditID"]:
            e["auditID"] = f"{cluster}-{i}"
    path = tmp_path / f"{cluster}-{len(events)}.jsonl"
    path.write_bytes(lines(events))
    summary = ingest_paths(store, [path], cluster)
    assert summary.rejected == 0


def _denied(user: str, n: int, start: datetime) -> list[dict]:
    return [
        {
            **event(
                "list", "secrets", user=user, code=403, time=_at(start + timedelta(seconds=3 * i))
            ),
            "auditID": f"{user}-{i}",
        }
        for i in range(n)
    ]


def test_threshold_fires_once_per_key_and_window(store, tmp_path) -> None:
    start = END - timedelta(minutes=3)
    _ingest(store, tmp_path, _denied("bob", 25, start) + _denied("carol", 5, start))
    rule = RULES.get("k8s.auth.denied_burst")
    (match,) = threshold_matches(store, rule, END - timedelta(minutes=5), END)
    assert match.key == "bob" and match.count == 25 and len(match.audit_ids) == 25
    assert match.message == "bob was denied 25 times within 5m"
    detector = Detector(store, [rule])
    first = detector.run_scheduled(END)
    again = detector.run_scheduled(END + timedelta(seconds=30))
    assert [a.rule for a in first] == ["k8s.auth.denied_burst"] and again == []
    (stored,) = list_alerts(store)
    assert stored.count == 25 and stored.key == "bob"
    detector.close()


def test_first_seen_needs_history_and_fires_on_new_combinations(store, tmp_path) -> None:
    old = [
        {
            **event("get", "pods", ip="10.0.0.1", time=_at(END - timedelta(days=d))),
            "auditID": f"old-{d}",
        }
        for d in range(1, 9)
    ]
    today = [
        {
            **event("get", "pods", ip="10.0.0.1", time=_at(END + timedelta(minutes=1))),
            "auditID": "same-ip",
        },
        {
            **event("get", "pods", ip="198.51.100.4", time=_at(END + timedelta(minutes=2))),
            "auditID": "new-ip",
        },
    ]
    _ingest(store, tmp_path, old + today)
    _ingest(
        store,
        tmp_path,
        [
            {
                **event("get", "pods", ip="192.0.2.1", time=_at(END + timedelta(minutes=2))),
                "auditID": "young-cluster",
            }
        ],
        cluster="young",
    )
    rule = RULES.get("k8s.human.new_source_ip")
    (match,) = first_seen_matches(store, rule, END, END + timedelta(hours=1))
    assert match.audit_ids == ("new-ip",) and match.cluster == "prod"
    assert match.message == "alice@example.com made requests from a new address 198.51.100.4"


def test_silence_of_a_cluster(store, tmp_path) -> None:
    _ingest(store, tmp_path, [{**event("get", "pods", time=_at(END)), "auditID": "last"}])
    rule = RULES.get("k8s.audit.silence")
    assert silence_matches(store, rule, END + timedelta(minutes=5)) == []
    (match,) = silence_matches(store, rule, END + timedelta(minutes=20))
    assert match.cluster == "prod" and "no audit events from cluster prod for 20m" in match.message
    detector = Detector(store, [rule])
    assert len(detector.run_scheduled(END + timedelta(minutes=20))) == 1
    assert detector.run_scheduled(END + timedelta(minutes=40)) == []  # one alert per silence
    detector.close()


def test_detector_stores_alerts_keyed_with_audit_ids(store, tmp_path) -> None:
    from kubetrail.model.normalize import normalize_records

    events = numbered(CASES)
    records = [(i + 1, line) for i, line in enumerate(lines(events).splitlines())]
    table = normalize_records(records, cluster="prod", source="t", batch_id="b").table
    raised: list = []
    detector = Detector(store, RULES.rules, notify=raised.extend)
    new = detector.on_batch(table)
    assert {a.rule for a in new} >= set(CASES)
    assert raised == new
    exec_alert = next(a for a in new if a.rule == "k8s.pod.exec")
    assert exec_alert.audit_ids == ("k8s.pod.exec/fires",) and exec_alert.status == "open"
    assert detector.on_batch(table) == []  # the same keys within the cooldown fold
    detector.close()


@pytest.mark.parametrize("days", [2])
def test_replay_and_backtest_over_stored_history(store, tmp_path, days: int) -> None:
    events = []
    for d in range(days):
        t = END - timedelta(days=d)
        events.append(
            {
                **event("create", "pods", name="web", sub="exec", code=101, time=_at(t)),
                "auditID": f"exec-{d}",
            }
        )
        events.append(
            {**event("get", "secrets", name="db", user=SA, time=_at(t)), "auditID": f"read-{d}"}
        )
    events += _denied("bob", 25, END - timedelta(minutes=2))
    _ingest(store, tmp_path, events)
    alerts = replay(store, RULES.enabled, END - timedelta(days=3), END + timedelta(hours=1))
    by_rule: dict[str, int] = {}
    for a in alerts:
        by_rule[a.rule] = by_rule.get(a.rule, 0) + 1
    assert by_rule["k8s.pod.exec"] == days  # a day apart: beyond the 1 h cooldown
    assert by_rule["k8s.auth.denied_burst"] == 1
    results = {
        r.rule.id: r
        for r in backtest(store, RULES.rules, END - timedelta(days=3), END + timedelta(hours=1))
    }
    assert results["k8s.pod.exec"].alerts == days and len(results["k8s.pod.exec"].days) == days
    assert results["k8s.auth.denied_burst"].alerts == 1
    assert results["k8s.audit.silence"].skipped
    assert results["k8s.namespace.deleted"].alerts == 0
