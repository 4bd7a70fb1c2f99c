"""Stored alerts on ClickHouse (``kubetrail.detect.alertstore``): the same folding, statuses
and delivery states as in the embedded store, and the detector writing there end to end."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kubetrail.detect import alertstore
from kubetrail.detect.alertstore import NewMatch
from kubetrail.store import open_store

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _scenario(store: Any) -> dict[str, Any]:
    """Raise, fold, re-raise after the cooldown, change statuses and deliveries; describe."""
    first, new = alertstore.record_alert(
        store, rule="r.exec", title="Exec", severity="high", cluster="prod", key="alice|web",
        message="alice exec into web", time=T0, audit_ids=["a1"], tags=["T1609"],
    )  # fmt: skip
    again, new_again = alertstore.record_alert(
        store, rule="r.exec", title="Exec", severity="high", cluster="prod", key="alice|web",
        message="alice exec into web", time=T0 + timedelta(minutes=5), audit_ids=["a2", "a1"],
    )  # fmt: skip
    later, new_later = alertstore.record_alert(
        store, rule="r.exec", title="Exec", severity="high", cluster="prod", key="alice|web",
        message="alice exec into web", time=T0 + timedelta(hours=3), audit_ids=["a3"],
    )  # fmt: skip
    raised = alertstore.record_many(
        store,
        [
            NewMatch("r.burst", "Burst", "medium", ("T1110",), "dev", "bob", "403s", T0, T0,
                     ("b1", "b2"), 2, fold="max"),
            NewMatch("r.burst", "Burst", "medium", ("T1110",), "dev", "carol", "403s", T0, T0,
                     ("c1",), 1, fold="max"),
        ],
    )  # fmt: skip
    burst = alertstore.record_many(
        store,
        [NewMatch("r.burst", "Burst", "medium", (), "dev", "bob", "403s",
                  T0 + timedelta(minutes=1), T0 + timedelta(minutes=1), ("b3",), 5, fold="max")],
    )  # fmt: skip
    acked = alertstore.set_status(store, first.id, "acknowledged", "admin")
    alertstore.set_delivery(store, first.id, "alertmanager", "failed", 1, "connection refused")
    alertstore.set_delivery(store, first.id, "alertmanager", "delivered", 2)
    with pytest.raises(KeyError):
        alertstore.set_status(store, "no-such-alert", "resolved", "admin")
    stored = alertstore.list_alerts(store, limit=10)
    open_dev = alertstore.list_alerts(store, status="open", cluster="dev")

    def plain(a: alertstore.StoredAlert) -> tuple[Any, ...]:
        return (a.rule, a.cluster, a.key, a.status, a.count, a.audit_ids, a.first_seen,
                a.last_seen, a.acknowledged_by, a.tags, a.deliveries)  # fmt: skip

    return {
        "new": (new, new_again, new_later, again.id == first.id, later.id == first.id),
        "raised": sorted(a.key for a in raised),
        "burst_new": burst,
        "acked": (acked.status, acked.acknowledged_by),
        "stored": sorted(map(plain, stored)),
        "open_dev": sorted(a.key for a in open_dev),
        "got": plain(alertstore.get_alert(store, first.id)),  # type: ignore[arg-type]
    }


def test_same_alerts_as_the_embedded_store(
    new_clickhouse_store: Callable[..., Any], tmp_path: Path
) -> None:
    ours = _scenario(new_clickhouse_store())
    with open_store(tmp_path / "alerts.duckdb") as embedded:
        theirs = _scenario(embedded)
    assert ours == theirs
    assert ours["new"] == (True, False, True, True, False)
    assert ours["raised"] == ["bob", "carol"] and ours["burst_new"] == []
    folded = next(s for s in ours["stored"] if s[2] == "bob")
    assert folded[4] == 5 and folded[5] == ("b1", "b2", "b3")  # threshold: max, not sum
    assert ours["got"][3] == "acknowledged" and ours["got"][10][0].state == "delivered"


def test_the_server_keeps_detections_on_with_clickhouse(
    new_clickhouse_store: Callable[..., Any],
) -> None:
    from kubetrail.detect.service import supports

    assert supports(new_clickhouse_store())


def test_ingest_detect_then_alerts_and_backtest_by_url(clickhouse_url: str, tmp_path: Path) -> None:
    """``ingest --detect``, ``alerts`` and ``rules backtest`` given a ClickHouse URL answer
    as they do on a DuckDB file for the same real events."""
    import json
    import uuid
    from urllib.parse import urlsplit

    from click.testing import CliRunner

    from kubetrail.cli import main

    events = str(Path(__file__).parents[1] / "data" / "events" / "falco-k8s-audit-traces.jsonl")
    parts = urlsplit(clickhouse_url)
    location = f"clickhouse://{parts.hostname}:{parts.port}/kt_{uuid.uuid4().hex[:10]}"
    embedded = str(tmp_path / "same.duckdb")

    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code in (0, 1), result.output
        return result.output

    def alerts(db: str) -> list[tuple[Any, ...]]:
        lines = cli("alerts", "--db", db, "--format", "json").splitlines()
        found = [json.loads(line) for line in lines if line.strip()]
        return sorted((a["rule"], a["key"], a["count"], tuple(a["auditIDs"])) for a in found)

    for db in (location, embedded):
        cli("ingest", events, "--db", db, "--detect", "--cluster", "prod")
    assert alerts(location) == alerts(embedded) and alerts(location)
    since = "36500d"  # the Falco traces are from 2018
    ours = cli("rules", "backtest", "--db", location, "--since", since, "--format", "json")
    assert ours == cli("rules", "backtest", "--db", embedded, "--since", since, "--format", "json")
