"""Alerts kept in their cluster's store file (issue 9): writes, merged reads, status by id,
delivery states next to the alert, and alerts left in server.db before a cluster moved."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from kubetrail.config import ClusterConfig, ServerConfig
from kubetrail.detect import alertstore, routed_alerts
from kubetrail.detect.alertstore import NewMatch
from kubetrail.errors import UsageError
from kubetrail.store import open_store, routing
from kubetrail.store.layout import RoutedStore

T0 = datetime(2024, 5, 1, 12, 0, 0)


def _match(cluster: str, key: str, at: datetime, environment: str = "") -> NewMatch:
    return NewMatch(
        rule="test.rule",
        title="A test rule",
        severity="high",
        tags=(),
        cluster=cluster,
        key=key,
        message=f"{key} in {cluster}",
        first=at,
        last=at,
        audit_ids=(f"{cluster}-{key}",),
        count=1,
        environment=environment,
    )


@pytest.fixture
def routed(tmp_path: Path) -> Iterator[RoutedStore]:
    config = ServerConfig(
        db=str(tmp_path / "main.duckdb"),
        clusters=[
            ClusterConfig(name="dev", environment="development"),
            ClusterConfig(name="prod", environment="production", store=str(tmp_path / "p.duckdb")),
        ],
    )
    store = RoutedStore.open(config, open_store)
    try:
        yield store
    finally:
        store.close()


def _ids(store: object) -> set[str]:
    return {a.id for a in alertstore.list_alerts(store)}  # type: ignore[arg-type]


def test_alerts_go_to_their_clusters_store(routed: RoutedStore) -> None:
    raised = routed_alerts.record_many(
        routed,
        [
            _match("prod", "alice", T0 + timedelta(minutes=1), "production"),
            _match("dev", "bob", T0),
        ],
    )
    assert [a.cluster for a in raised] == ["dev", "prod"]  # in the order of their first match
    prod, dev = raised[1], raised[0]
    assert _ids(routed.by_cluster["prod"]) == {prod.id}
    assert _ids(routed.main) == {dev.id}
    # A new match of the same key folds into the alert in the production file.
    again = routed_alerts.record_many(routed, [_match("prod", "alice", T0 + timedelta(minutes=2))])
    assert again == []
    (folded,) = alertstore.list_alerts(routed.by_cluster["prod"])
    assert folded.id == prod.id and folded.count == 2


def test_reads_merge_every_store_by_time_and_follow_the_scope(routed: RoutedStore) -> None:
    items = [
        _match("prod" if i % 2 else "dev", f"k{i}", T0 + timedelta(minutes=i)) for i in range(6)
    ]
    routed_alerts.record_many(routed, items)
    every = routed_alerts.list_alerts(routed)
    assert [a.key for a in every] == ["k5", "k4", "k3", "k2", "k1", "k0"]
    assert [a.key for a in routed_alerts.list_alerts(routed, limit=3)] == ["k5", "k4", "k3"]
    assert {a.cluster for a in routed_alerts.list_alerts(routed, cluster="prod")} == {"prod"}
    assert {a.cluster for a in routed_alerts.list_alerts(routed, cluster=["dev"])} == {"dev"}
    assert routing.read_stores(routed, "prod") == [routed.main, routed.by_cluster["prod"]]
    assert routing.read_stores(routed, "dev") == [routed.main]


def test_status_and_deliveries_are_kept_with_the_alert(routed: RoutedStore) -> None:
    (prod,) = routed_alerts.record_many(routed, [_match("prod", "alice", T0)])
    acked = routed_alerts.set_status(routed, prod.id, "acknowledged", "carol")
    assert acked.status == "acknowledged" and acked.acknowledged_by == "carol"
    routed_alerts.set_delivery(routed, prod, "webhook", "failed", 3, "connection refused")
    got = routed_alerts.get_alert(routed, prod.id)
    assert got is not None and got.status == "acknowledged"
    assert [(d.sink, d.state) for d in got.deliveries] == [("webhook", "failed")]
    # Nothing of it reached server.db.
    assert alertstore.get_alert(routed.main, prod.id) is None
    assert routed.main.query("SELECT count(*) AS n FROM alert_deliveries").to_pylist() == [{"n": 0}]
    with pytest.raises(KeyError):
        routed_alerts.set_status(routed, "no-such-alert", "resolved", "x")
    with pytest.raises(UsageError):
        routed_alerts.set_status(routed, prod.id, "closed", "x")
    assert routed_alerts.get_alert(routed, "no-such-alert") is None


def test_alerts_stored_in_server_db_before_stay_readable(routed: RoutedStore) -> None:
    # An alert of "prod" written to server.db by a version that kept every alert there.
    (old,) = alertstore.record_many(routed.main, [_match("prod", "old", T0)])
    (new,) = routed_alerts.record_many(routed, [_match("prod", "new", T0 + timedelta(hours=2))])
    listed = [a.id for a in routed_alerts.list_alerts(routed, cluster="prod")]
    assert listed == [new.id, old.id]
    resolved = routed_alerts.set_status(routed, old.id, "resolved", "dave")
    assert resolved.status == "resolved"
    assert alertstore.get_alert(routed.main, old.id).status == "resolved"  # type: ignore[union-attr]


def test_a_single_store_is_used_as_it_is(tmp_path: Path) -> None:
    with open_store(tmp_path / "one.duckdb") as store:
        (alert,) = routed_alerts.record_many(store, [_match("prod", "alice", T0)])
        assert routing.every_store(store) == [store]
        assert [a.id for a in routed_alerts.list_alerts(store, cluster="prod")] == [alert.id]
        assert routed_alerts.set_status(store, alert.id, "resolved", "x").status == "resolved"


def test_scraped_counters_stay_with_their_cluster(routed: RoutedStore) -> None:
    from kubetrail.store.audit_counters import (
        ERROR_METRIC,
        Sample,
        audit_error_gaps,
        read_samples,
        record_samples,
    )

    # A series begun in server.db (before "prod" had a file of its own) goes on in its file.
    record_samples(routed.main, [Sample("prod", T0, ERROR_METRIC, "webhook", 5)])
    record_samples(
        routed,
        [
            Sample("prod", T0 + timedelta(minutes=1), ERROR_METRIC, "webhook", 8),
            Sample("dev", T0, ERROR_METRIC, "webhook", 1),
            Sample("dev", T0 + timedelta(minutes=1), ERROR_METRIC, "webhook", 3),
        ],
    )
    assert {s.cluster for s in read_samples(routed.by_cluster["prod"])} == {"prod"}
    assert [s.value for s in read_samples(routed.main, "prod")] == [5]
    assert {s.cluster for s in read_samples(routed.main)} == {"dev", "prod"}
    gaps = {(g.cluster, g.events) for g in audit_error_gaps(routed)}
    assert gaps == {("dev", 2), ("prod", 3)}
    assert [(g.cluster, g.events) for g in audit_error_gaps(routed, "prod")] == [("prod", 3)]
