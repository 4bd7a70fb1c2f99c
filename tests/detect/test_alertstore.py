"""The stored-alert API the web UI builds on: record, fold by key, list, get, set status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubetrail.detect.alertstore import (
    MAX_AUDIT_IDS,
    get_alert,
    list_alerts,
    record_alert,
    set_delivery,
    set_status,
)
from kubetrail.errors import UsageError
from kubetrail.store import DuckDBStore, open_store

T0 = datetime(2024, 5, 1, 12, 0, 0)


def _record(store: DuckDBStore, **kw: object):
    args: dict[str, object] = {
        "rule": "k8s.exec.pod",
        "title": "Exec into a pod",
        "severity": "high",
        "tags": ("T1609",),
        "cluster": "prod",
        "key": "alice|default/web",
        "message": "alice ran sh in default/web",
        "time": T0,
        "audit_ids": ["a1"],
    }
    args.update(kw)
    return record_alert(store, **args)  # type: ignore[arg-type]


def test_record_and_read_back(store: DuckDBStore) -> None:
    alert, new = _record(store)
    assert new
    got = get_alert(store, alert.id)
    assert got == alert
    assert got.rule == "k8s.exec.pod" and got.status == "open" and got.count == 1
    assert got.tags == ("T1609",) and got.audit_ids == ("a1",)
    assert got.first_seen == T0.replace(tzinfo=UTC)
    assert got.acknowledged_by is None and got.resolved_by is None
    assert get_alert(store, "nope") is None


def test_same_key_within_cooldown_folds(store: DuckDBStore) -> None:
    first, _ = _record(store)
    second, new = _record(store, time=T0 + timedelta(minutes=10), audit_ids=["a2", "a1"])
    assert not new and second.id == first.id
    assert second.count == 3 and second.audit_ids == ("a1", "a2")
    assert second.last_seen == (T0 + timedelta(minutes=10)).replace(tzinfo=UTC)
    other, new = _record(store, key="bob|default/web", audit_ids=["b1"])
    assert new and other.id != first.id


def test_after_cooldown_or_resolve_a_new_alert(store: DuckDBStore) -> None:
    first, _ = _record(store)
    later, new = _record(store, time=T0 + timedelta(hours=2), cooldown=timedelta(hours=1))
    assert new and later.id != first.id
    set_status(store, later.id, "resolved", "ops")
    again, new = _record(store, time=T0 + timedelta(hours=2, minutes=1))
    assert new and again.id not in (first.id, later.id)


def test_audit_ids_are_capped_count_is_not(store: DuckDBStore) -> None:
    ids = [f"id{i}" for i in range(MAX_AUDIT_IDS + 50)]
    alert, _ = _record(store, audit_ids=ids)
    assert alert.count == MAX_AUDIT_IDS + 50 and len(alert.audit_ids) == MAX_AUDIT_IDS


def test_list_filters_and_order(store: DuckDBStore) -> None:
    a, _ = _record(store)
    b, _ = _record(store, cluster="dev", key="k2", time=T0 + timedelta(hours=3))
    c, _ = _record(store, key="k3", time=T0 - timedelta(days=2))
    assert [x.id for x in list_alerts(store)] == [b.id, a.id, c.id]
    assert [x.id for x in list_alerts(store, cluster="dev")] == [b.id]
    assert [x.id for x in list_alerts(store, since=T0 - timedelta(hours=1))] == [b.id, a.id]
    aware = (T0 + timedelta(hours=1)).replace(tzinfo=UTC)
    assert [x.id for x in list_alerts(store, since=aware)] == [b.id]
    assert [x.id for x in list_alerts(store, limit=1)] == [b.id]
    set_status(store, a.id, "acknowledged", "carol")
    assert [x.id for x in list_alerts(store, status="acknowledged")] == [a.id]
    assert [x.id for x in list_alerts(store, status="open")] == [b.id, c.id]
    with pytest.raises(UsageError):
        list_alerts(store, status="closed")


def test_set_status_records_who(store: DuckDBStore) -> None:
    alert, _ = _record(store)
    acked = set_status(store, alert.id, "acknowledged", "carol")
    assert acked.status == "acknowledged" and acked.acknowledged_by == "carol"
    resolved = set_status(store, alert.id, "resolved", "dave")
    assert resolved.status == "resolved" and resolved.resolved_by == "dave"
    reopened = set_status(store, alert.id, "open", "erin")
    assert reopened.status == "open" and reopened.acknowledged_by is None
    with pytest.raises(KeyError):
        set_status(store, "missing", "resolved", "x")
    with pytest.raises(UsageError):
        set_status(store, alert.id, "done", "x")


def test_deliveries_and_json(store: DuckDBStore) -> None:
    alert, _ = _record(store)
    set_delivery(store, alert.id, "webhook", "failed", 3, "connection refused")
    set_delivery(store, alert.id, "stdout", "delivered", 1)
    got = get_alert(store, alert.id)
    assert got is not None
    assert [(d.sink, d.state, d.attempts) for d in got.deliveries] == [
        ("stdout", "delivered", 1),
        ("webhook", "failed", 3),
    ]
    set_delivery(store, alert.id, "webhook", "delivered", 4)
    doc = get_alert(store, alert.id).to_json()  # type: ignore[union-attr]
    assert doc["auditIDs"] == ["a1"] and doc["first_seen"] == "2024-05-01T12:00:00.000000Z"
    assert {d["sink"]: d["state"] for d in doc["deliveries"]} == {
        "stdout": "delivered",
        "webhook": "delivered",
    }


def test_alerts_survive_reopen(db_path) -> None:
    with open_store(db_path) as s:
        alert, _ = _record(s)
    with open_store(db_path) as s:
        assert get_alert(s, alert.id) == alert


def test_bad_severity_refused(store: DuckDBStore) -> None:
    with pytest.raises(UsageError):
        _record(store, severity="urgent")
