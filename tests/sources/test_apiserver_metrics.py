"""Scraping the API server's audit counters (issue 9): a real HTTPS endpoint on 127.0.0.1,
a bearer token, counters that rise, a counter reset, and endpoints that fail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from kubetrail.certs import DevCerts, write_dev_certs
from kubetrail.cli import main
from kubetrail.detect.detector import Detector
from kubetrail.detect.loader import load_ruleset
from kubetrail.errors import SourceError
from kubetrail.sources.apiserver_metrics import (
    MetricsScraper,
    MetricsTarget,
    ScrapeMetrics,
    parse_samples,
)
from kubetrail.store import DuckDBStore, open_store
from kubetrail.store.audit_counters import (
    ERROR_METRIC,
    EVENT_METRIC,
    Sample,
    audit_error_gaps,
    read_samples,
    record_samples,
)
from metrics_endpoint import TOKEN, Endpoint, metrics_endpoint


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def endpoint(certs: DevCerts) -> Iterator[Endpoint]:
    with metrics_endpoint(certs) as served:
        yield served


def _target(endpoint: Endpoint, certs: DevCerts, tmp_path: Path, token: str = TOKEN):
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    return MetricsTarget("prod", endpoint.url, str(token_file), str(certs.ca), 60.0, 5.0)


def _metric(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_scrapes_with_the_token_and_reports_what_the_api_server_failed_to_send(
    endpoint: Endpoint, certs: DevCerts, tmp_path: Path, store: DuckDBStore
) -> None:
    registry = CollectorRegistry()
    scraper = MetricsScraper(store, [_target(endpoint, certs, tmp_path)], ScrapeMetrics(registry))
    try:
        endpoint.values.update(webhook_errors=2, events=1000)
        assert scraper.scrape_once(scraper.targets[0])
        endpoint.values.update(webhook_errors=9, events=1500)  # 7 more lost by the webhook
        assert scraper.scrape_once(scraper.targets[0])
        endpoint.values.update(events=1800)  # nothing lost since
        assert scraper.scrape_once(scraper.targets[0])
    finally:
        scraper.stop()
    assert endpoint.requests == [f"Bearer {TOKEN}"] * 3
    samples = read_samples(store, "prod")
    assert {(s.metric, s.plugin) for s in samples} == {
        (ERROR_METRIC, "webhook"),
        (ERROR_METRIC, "log"),
        (EVENT_METRIC, ""),
    }
    (gap,) = audit_error_gaps(store)
    assert (gap.cluster, gap.plugin, gap.events, gap.generated, gap.reset) == (
        "prod",
        "webhook",
        7,
        500,
        False,
    )
    assert gap.message.startswith("the API server failed to send 7 audit events between ")
    assert gap.message.endswith(", plugin webhook")
    assert _metric(registry, "kubetrail_apiserver_scrapes_total", cluster="prod", outcome="ok") == 3
    assert _metric(registry, "kubetrail_apiserver_scrape_up", cluster="prod") == 1
    webhook = _metric(
        registry, "kubetrail_apiserver_audit_errors", cluster="prod", plugin="webhook"
    )
    assert webhook == 9


def test_a_counter_reset_is_not_a_negative_gap(store: DuckDBStore) -> None:
    t0 = datetime(2026, 3, 1)
    values = [40, 41, 3, 3]  # the API server restarted between the 2nd and 3rd scrape
    record_samples(
        store,
        [
            Sample("prod", t0 + timedelta(minutes=i), ERROR_METRIC, "webhook", v)
            for i, v in enumerate(values)
        ],
    )
    gaps = audit_error_gaps(store)
    assert [(g.events, g.reset) for g in gaps] == [(1, False), (3, True)]
    assert all(g.events > 0 for g in gaps)
    assert audit_error_gaps(store, since=t0 + timedelta(minutes=2)) == []


def test_failures_are_counted_and_never_raise(
    endpoint: Endpoint, certs: DevCerts, tmp_path: Path, store: DuckDBStore
) -> None:
    registry = CollectorRegistry()
    wrong = _target(endpoint, certs, tmp_path, token="not-the-token")
    closed = MetricsTarget("dev", "https://127.0.0.1:9/metrics", None, str(certs.ca), 60.0, 2.0)
    untrusted = MetricsTarget("stage", endpoint.url, wrong.token_file, None, 60.0, 2.0)
    scraper = MetricsScraper(store, [wrong, closed, untrusted], ScrapeMetrics(registry))
    try:
        assert scraper.run_due() == 3
        assert scraper.run_due() == 0  # not due again before the interval
    finally:
        scraper.stop()
    for cluster in ("prod", "dev", "stage"):
        failed = _metric(
            registry, "kubetrail_apiserver_scrapes_total", cluster=cluster, outcome="failed"
        )
        assert failed == 1, cluster
        assert _metric(registry, "kubetrail_apiserver_scrape_up", cluster=cluster) == 0
    assert read_samples(store) == []


def test_parse_keeps_only_the_audit_counters_and_refuses_broken_text() -> None:
    text = Endpoint("x", {"webhook_errors": 3, "log_errors": 0, "events": 12}).text()
    at = datetime(2026, 3, 1)
    found = {(s.metric, s.plugin): s.value for s in parse_samples(text, "prod", at)}
    assert found == {
        (ERROR_METRIC, "log"): 0.0,
        (ERROR_METRIC, "webhook"): 3.0,
        (EVENT_METRIC, ""): 12.0,
    }
    with pytest.raises(SourceError, match="not the Prometheus text format"):
        parse_samples('apiserver_audit_error_total{plugin="webhook" 3\n', "prod", at)


def test_the_builtin_rule_raises_one_alert_per_failing_backend(store: DuckDBStore) -> None:
    rule = load_ruleset().get("k8s.audit.apiserver_errors")
    assert rule is not None and rule.kind == "audit_errors"
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    t0 = now - timedelta(minutes=4)
    record_samples(
        store,
        [
            Sample("prod", t0 + timedelta(minutes=i), ERROR_METRIC, "webhook", v)
            for i, v in enumerate([5, 5, 8])
        ],
    )
    detector = Detector(store, [rule], environments={"prod": "production"})
    try:
        (alert,) = detector.run_scheduled(now)
        assert alert.count == 3 and alert.environment == "production"
        assert (
            "failed to send 3 audit events" in alert.message and "plugin webhook" in alert.message
        )
        assert detector.run_scheduled(now + timedelta(seconds=30)) == []  # seen once
        record_samples(store, [Sample("prod", now, ERROR_METRIC, "webhook", 10)])
        assert detector.run_scheduled(now + timedelta(minutes=1)) == []  # folds into the alert
    finally:
        detector.close()
    from kubetrail.detect.alertstore import list_alerts

    (stored,) = list_alerts(store)
    assert stored.count == 5 and stored.key == "webhook"


def test_stats_reports_the_lost_events(tmp_path: Path) -> None:
    db = tmp_path / "audit.duckdb"
    t0 = datetime(2026, 3, 1)
    with open_store(db) as store:
        record_samples(
            store,
            [
                Sample("prod", t0, ERROR_METRIC, "webhook", 1),
                Sample("prod", t0 + timedelta(minutes=1), ERROR_METRIC, "webhook", 4),
            ],
        )
    result = CliRunner().invoke(main, ["stats", "--db", str(db), "--format", "json"])
    assert result.exit_code == 0, result.output
    (lost,) = json.loads(result.output)["audit_errors"]
    assert lost["events"] == 3 and lost["plugin"] == "webhook" and lost["kind"] == "audit_errors"
    text = CliRunner().invoke(main, ["stats", "--db", str(db)])
    assert "gap: prod: the API server failed to send 3 audit events" in text.output
