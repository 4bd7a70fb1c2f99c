"""Issue 9 on ClickHouse: alerts record and filter by environment (also in an alerts table
created before environments existed), and the scraped audit counters are kept and read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubetrail.detect import alertstore
from kubetrail.store.audit_counters import ERROR_METRIC, Sample, audit_error_gaps, record_samples

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_OLD_ALERTS = """CREATE TABLE alerts (id String, rule String, title String,
    severity LowCardinality(String), tags Array(String), cluster LowCardinality(String),
    key String, message String, status LowCardinality(String),
    first_seen DateTime64(6, 'UTC'), last_seen DateTime64(6, 'UTC'), count Int64,
    audit_ids Array(String), acknowledged_by Nullable(String), resolved_by Nullable(String),
    updated_at DateTime64(6, 'UTC')) ENGINE = ReplacingMergeTree(updated_at) ORDER BY id"""


def test_alerts_carry_their_environment(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    store.command(_OLD_ALERTS)  # a store whose alerts predate environments
    for cluster, env in (("prod-eu", "production"), ("dev", "development")):
        alertstore.record_alert(
            store, rule="r.exec", title="Exec", severity="high", cluster=cluster, key="k",
            message="m", time=T0, audit_ids=["a1"], environment=env,
        )  # fmt: skip
    (prod,) = alertstore.list_alerts(store, environment="production")
    assert prod.cluster == "prod-eu" and prod.to_json()["environment"] == "production"
    both = alertstore.list_alerts(store, cluster=["prod-eu", "dev"])
    assert {a.environment for a in both} == {"production", "development"}


def test_audit_counter_samples(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    naive = T0.replace(tzinfo=None)
    record_samples(
        store,
        [
            Sample("prod", naive + timedelta(minutes=i), ERROR_METRIC, "webhook", v)
            for i, v in enumerate([4, 9, 2])
        ],
    )
    gaps = audit_error_gaps(store, "prod")
    assert [(g.events, g.reset) for g in gaps] == [(5, False), (2, True)]
