"""Sinks against real servers: a recording HTTP server (webhook, Slack) and Alertmanager."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from datetime import datetime

import httpx
import pytest

from kubetrail.config import SinkConfig
from kubetrail.detect.alertstore import get_alert, record_alert
from kubetrail.detect.sinks import (
    SIGNATURE_HEADER,
    AlertmanagerSink,
    Dispatcher,
    SlackSink,
    StdoutSink,
    WebhookSink,
    build_sink,
)
from kubetrail.errors import ConfigError

T0 = datetime(2024, 5, 1, 12, 0)


def _alert(store, severity: str = "high", rule: str = "k8s.pod.exec"):
    alert, _ = record_alert(
        store,
        rule=rule,
        title="Exec into a pod",
        severity=severity,
        tags=("T1609",),
        cluster="prod",
        key="alice|default|web",
        message="alice ran `sh` in default/web",
        time=T0,
        audit_ids=["a1", "a2"],
        environment="production",
    )
    return alert


def _wait_state(store, alert_id: str, sink: str, state: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = get_alert(store, alert_id)
        found = [d for d in got.deliveries if d.sink == sink]
        if found and found[0].state == state:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"{sink} never reached {state}: {get_alert(store, alert_id)}")


def test_webhook_is_signed_with_hmac_sha256(store, recorder) -> None:
    alert = _alert(store)
    sink = WebhookSink("webhook", recorder.url, "s3cret")
    sink.send(alert)
    sink.close()
    (got,) = recorder.requests
    expected = hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
    assert got.headers[SIGNATURE_HEADER] == f"sha256={expected}"
    body = got.json()
    assert body["rule"] == "k8s.pod.exec" and body["auditIDs"] == ["a1", "a2"]
    assert body["severity"] == "high" and body["message"] == alert.message
    assert body["environment"] == "production" and body["cluster"] == "prod"


def test_slack_gets_text(store, recorder) -> None:
    sink = SlackSink("slack", recorder.url, 5.0)
    sink.send(_alert(store))
    sink.close()
    (got,) = recorder.requests
    text = got.json()["text"]
    assert "[HIGH] Exec into a pod" in text and "alice ran `sh`" in text
    assert "cluster prod, environment production" in text


def test_stdout_writes_json_lines(store) -> None:
    out = io.StringIO()
    StdoutSink(stream=out).send(_alert(store))
    assert json.loads(out.getvalue())["rule"] == "k8s.pod.exec"


def test_dispatcher_retries_with_backoff_and_records_state(store, recorder) -> None:
    recorder.fail_first = 2
    config = SinkConfig(type="webhook", name="hook", url=recorder.url, secret="k")
    dispatcher = Dispatcher([(build_sink(config), config)], store=store, base_backoff=0.05)
    dispatcher.start()
    try:
        alert = _alert(store)
        dispatcher([alert])
        delivery = _wait_state(store, alert.id, "hook", "delivered")
    finally:
        dispatcher.stop()
    assert delivery.attempts == 3 and len(recorder.requests) == 3
    assert dispatcher.metrics.failures.labels("hook")._value.get() == 2
    assert dispatcher.metrics.delivered.labels("hook")._value.get() == 1


def test_unreachable_sink_fails_without_losing_the_alert(store) -> None:
    from detect_ports import free_port

    url = f"http://127.0.0.1:{free_port()}/nothing-listens"
    config = SinkConfig(type="slack", name="slack", url=url, timeout_seconds=1)
    dispatcher = Dispatcher(
        [(build_sink(config), config)], store=store, base_backoff=0.01, max_attempts=3
    )
    dispatcher.start()
    try:
        alert = _alert(store)
        dispatcher([alert])
        delivery = _wait_state(store, alert.id, "slack", "failed")
    finally:
        dispatcher.stop()
    assert delivery.attempts == 3 and delivery.last_error
    assert get_alert(store, alert.id).status == "open"
    assert dispatcher.metrics.abandoned.labels("slack")._value.get() == 1


def test_routing_by_severity_and_rule(store, recorder) -> None:
    only_high = SinkConfig(
        type="webhook", name="a", url=recorder.url, secret="k", min_severity="high"
    )
    only_exec = SinkConfig(
        type="webhook",
        name="b",
        url=recorder.url,
        secret="k",
        min_severity="info",
        rules=["k8s.pod.*"],
    )
    dispatcher = Dispatcher(
        [(build_sink(only_high), only_high), (build_sink(only_exec), only_exec)], store=store
    )
    low = _alert(store, severity="low", rule="k8s.secret.deleted")
    high_exec = _alert(store, severity="high")
    assert not dispatcher.wants(only_high, low) and not dispatcher.wants(only_exec, low)
    assert dispatcher.wants(only_high, high_exec) and dispatcher.wants(only_exec, high_exec)
    dispatcher.stop()


def test_bad_sink_configs_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown type"):
        build_sink(SinkConfig(type="pager"))
    with pytest.raises(ConfigError, match="secret"):
        build_sink(SinkConfig(type="webhook", url="https://x.example/hook"))
    with pytest.raises(ConfigError, match="URL"):
        build_sink(SinkConfig(type="alertmanager", url="localhost:9093"))
    sink = build_sink(
        SinkConfig(type="webhook", url="https://x.example/h", secret_env="HOOK_KEY"),
        env={"HOOK_KEY": "abc"},
    )
    assert isinstance(sink, WebhookSink) and sink.secret == b"abc"
    sink.close()


@pytest.mark.slow
def test_alertmanager_receives_the_alert(store, alertmanager) -> None:
    alert = _alert(store)
    sink = AlertmanagerSink("am", alertmanager)
    sink.send(alert)
    sink.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
        if got:
            break
        time.sleep(0.05)
    (received,) = got
    assert received["labels"]["alertname"] == "k8s.pod.exec"
    assert received["labels"]["severity"] == "high" and received["labels"]["cluster"] == "prod"
    assert received["labels"]["environment"] == "production"
    assert received["annotations"]["description"] == alert.message
    assert received["status"]["state"] == "active"
