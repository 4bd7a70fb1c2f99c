"""Detections in the running server: a webhook POST of audit events raises alerts that are
stored and delivered to real sinks (a recording webhook receiver, Alertmanager)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from rule_cases import EXEC_QUERY, event

from kubetrail.config import ClusterConfig, DetectConfig, ServerConfig, SinkConfig
from kubetrail.detect.alertstore import list_alerts
from kubetrail.store import open_store
from kubetrail.web.app import create_app
from kubetrail.web.auth import hash_token
from kubetrail.web.server import uvicorn_config

TOKEN = "prod-token-0123456789"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    servers: list[tuple[uvicorn.Server, threading.Thread, socket.socket]] = []

    def stop_all() -> None:
        for server, thread, _ in servers:
            server.should_exit = True
            thread.join(30)

    def start(detect: DetectConfig) -> tuple[str, ServerConfig]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = ServerConfig(
            db=str(tmp_path / "audit.duckdb"),
            listen=f"127.0.0.1:{port}",
            clusters=[ClusterConfig(name="prod", token_sha256=[hash_token(TOKEN)])],
        )
        server = uvicorn.Server(
            uvicorn_config(create_app(config, detect=detect), config, log_level="warning")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        servers.append((server, thread, sock))
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}", config

    start.stop = stop_all  # type: ignore[attr-defined]
    yield start
    stop_all()
    for _, _, sock in servers:
        sock.close()


def _post_exec(url: str, audit_id: str) -> None:
    e = event("create", "pods", ns="shop", name="web", sub="exec", code=101, query=EXEC_QUERY)
    e["auditID"] = audit_id
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [e]}
    answer = httpx.post(
        f"{url}/ingest/v1/events",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def test_posted_exec_is_stored_and_sent_to_the_webhook(serve, recorder) -> None:
    detect = DetectConfig(
        sinks=[
            SinkConfig(
                type="webhook", name="hook", url=recorder.url, secret="k", min_severity="high"
            )
        ],
        schedule_seconds=3600,
    )
    url, _ = serve(detect)
    _post_exec(url, "exec-1")
    (got,) = recorder.wait_for(1)
    body = got.json()
    assert body["rule"] == "k8s.pod.exec" and body["auditIDs"] == ["exec-1"]
    assert body["cluster"] == "prod" and "cat /etc/shadow" in body["message"]
    metrics = httpx.get(f"{url}/metrics", timeout=5).text
    assert 'kubetrail_alerts_raised_total{rule="k8s.pod.exec",severity="high"} 1.0' in metrics
    assert 'kubetrail_alert_deliveries_total{sink="hook"} 1.0' in metrics


def test_alerts_are_stored_when_the_sink_is_down(serve, tmp_path) -> None:
    from detect_ports import free_port

    dead = f"http://127.0.0.1:{free_port()}/down"
    detect = DetectConfig(
        sinks=[SinkConfig(type="slack", name="slack", url=dead, timeout_seconds=1)]
    )
    url, config = serve(detect)
    _post_exec(url, "exec-2")
    deadline = time.monotonic() + 15
    while (
        'kubetrail_alert_delivery_failures_total{sink="slack"}'
        not in (text := httpx.get(f"{url}/metrics", timeout=5).text)
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert 'kubetrail_alert_delivery_failures_total{sink="slack"}' in text
    _post_exec(url, "exec-3")  # ingest goes on while a sink fails
    serve.stop()
    with open_store(config.db) as store:
        (alert,) = list_alerts(store)
    assert alert.rule == "k8s.pod.exec" and alert.count == 2
    assert set(alert.audit_ids) == {"exec-2", "exec-3"}
    (delivery,) = alert.deliveries
    assert delivery.sink == "slack" and delivery.state in ("retrying", "failed")
    assert delivery.last_error


@pytest.mark.slow
def test_posted_exec_reaches_alertmanager(serve, alertmanager) -> None:
    detect = DetectConfig(sinks=[SinkConfig(type="alertmanager", url=alertmanager)])
    url, _ = serve(detect)
    _post_exec(url, "exec-am")
    deadline = time.monotonic() + 15
    found: list = []
    while not found and time.monotonic() < deadline:
        found = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
        time.sleep(0.05)
    assert [a["labels"]["alertname"] for a in found] == ["k8s.pod.exec"]


def test_demo_load_runs_the_rules(tmp_path) -> None:
    from kubetrail.web.bootstrap import load_demo

    config = ServerConfig(db=str(tmp_path / "demo.duckdb"), demo_events=3000)
    # A short demo ending in the night has no human at work: end it in yesterday's afternoon.
    end = (datetime.now(UTC) - timedelta(days=1)).replace(hour=15, minute=0)
    assert load_demo(config, detect=DetectConfig(), end=end).stored == 3000
    with open_store(config.db) as store:
        alerts = list_alerts(store)
    assert {"k8s.secret.read_by_human", "k8s.write.outside_ci"} <= {a.rule for a in alerts}
    assert all(a.cluster == "demo" for a in alerts)
    # A demo that ended yesterday is also a silent cluster now; every other alert names events.
    assert all(a.audit_ids for a in alerts if a.rule != "k8s.audit.silence")


def test_start_up_check_warns_about_rules_the_policy_blinds(store, caplog) -> None:
    from kubetrail.detect.service import DetectionService

    policy = Path(__file__).parents[1] / "data" / "policies" / "gke-gce-configure-helper.yaml"
    with caplog.at_level("WARNING", logger="kubetrail.detect"):
        service = DetectionService(DetectConfig(policy=str(policy)), store)
    assert any(w.startswith("k8s.events.deleted: delete events") for w in service.warnings)
    assert "rule blind under" in caplog.text
    service.detector.close()
