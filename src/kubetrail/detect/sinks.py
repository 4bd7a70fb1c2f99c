"""Alert sinks and the dispatcher that delivers to them with retries.

Sinks: ``stdout`` (one JSON object per line), ``webhook`` (JSON POST signed with HMAC-SHA256
of the body in ``X-Kubetrail-Signature: sha256=<hex>``), ``slack`` (a Slack-compatible
incoming webhook: ``{"text": ...}``) and ``alertmanager`` (``POST /api/v2/alerts`` with
Alertmanager's postableAlert objects). Each sink takes alerts from a minimum severity and,
optionally, only from some rules (``*`` wildcards).

The dispatcher runs in a thread of its own: a delivery that fails is retried with exponential
backoff (and jitter) up to ``max_attempts``; every state change is written next to the alert
(``alert_deliveries``), so ``kubetrail alerts`` shows it, and counted in /metrics.
"""

from __future__ import annotations

import fnmatch
import hashlib
import heapq
import hmac
import json
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any, Protocol, TextIO

import httpx
from prometheus_client import CollectorRegistry, Counter

from ..config import SinkConfig
from ..errors import ConfigError
from ..store.base import Store
from .alertstore import SEVERITIES, StoredAlert
from .routed_alerts import set_delivery

log = logging.getLogger("kubetrail.sinks")
SIGNATURE_HEADER = "X-Kubetrail-Signature"
SINK_TYPES = ("stdout", "webhook", "slack", "alertmanager")


class Sink(Protocol):
    """Something that delivers one alert or raises."""

    name: str

    def send(self, alert: StoredAlert) -> None:
        """Deliver the alert; raise on failure (the dispatcher retries)."""
        ...


def alert_payload(alert: StoredAlert) -> dict[str, Any]:
    """The JSON sent to webhooks and printed by the stdout sink."""
    return alert.to_json()


class StdoutSink:
    """Writes one JSON object per alert to a stream (standard output by default)."""

    def __init__(self, name: str = "stdout", stream: TextIO | None = None) -> None:
        self.name = name
        self.stream = stream

    def send(self, alert: StoredAlert) -> None:
        out = self.stream or sys.stdout
        out.write(json.dumps(alert_payload(alert), separators=(",", ":")) + "\n")
        out.flush()


class _HttpSink:
    def __init__(self, name: str, url: str, timeout: float) -> None:
        self.name = name
        self.url = url
        self._client = httpx.Client(timeout=timeout)

    def _post(self, body: bytes, headers: dict[str, str]) -> None:
        response = self._client.post(
            self.url, content=body, headers={"Content-Type": "application/json", **headers}
        )
        if response.status_code >= 300:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

    def close(self) -> None:
        self._client.close()


class WebhookSink(_HttpSink):
    """POSTs the alert as JSON; the body's HMAC-SHA256 is in ``X-Kubetrail-Signature``."""

    def __init__(self, name: str, url: str, secret: str, timeout: float = 5.0) -> None:
        super().__init__(name, url, timeout)
        self.secret = secret.encode()

    def send(self, alert: StoredAlert) -> None:
        body = json.dumps(alert_payload(alert), separators=(",", ":")).encode()
        self._post(body, {SIGNATURE_HEADER: "sha256=" + sign(self.secret, body)})


def sign(secret: bytes, body: bytes) -> str:
    """The hex HMAC-SHA256 of a body (what a receiver recomputes to check a webhook)."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


class SlackSink(_HttpSink):
    """POSTs ``{"text": ...}`` to a Slack-compatible incoming webhook."""

    def send(self, alert: StoredAlert) -> None:
        text = (
            f"*[{alert.severity.upper()}] {alert.title}* ({alert.rule}, cluster {alert.cluster}"
            + (f", environment {alert.environment}" if alert.environment else "")
            + ")\n"
            f"{alert.message}"
        )
        self._post(json.dumps({"text": text}).encode(), {})


class AlertmanagerSink(_HttpSink):
    """POSTs the alert to Alertmanager's ``/api/v2/alerts`` as one postableAlert."""

    def __init__(self, name: str, url: str, timeout: float = 5.0) -> None:
        super().__init__(name, url.rstrip("/") + "/api/v2/alerts", timeout)

    def send(self, alert: StoredAlert) -> None:
        self._post(json.dumps([alertmanager_alert(alert)]).encode(), {})


def alertmanager_alert(alert: StoredAlert) -> dict[str, Any]:
    """An Alertmanager postableAlert: labels identify it, annotations describe it.

    ``endsAt`` is left out: Alertmanager then resolves the alert after its resolve_timeout.
    ``environment`` is a label when the cluster has one (an empty label is no label).
    """
    labels = {
        "alertname": alert.rule,
        "severity": alert.severity,
        "cluster": alert.cluster,
        "kubetrail_alert_id": alert.id,
    }
    if alert.environment:
        labels["environment"] = alert.environment
    return {
        "labels": labels,
        "annotations": {
            "summary": alert.title,
            "description": alert.message,
            "audit_ids": ",".join(alert.audit_ids[:20]),
        },
        "startsAt": alert.first_seen.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def build_sink(config: SinkConfig, env: dict[str, str] | None = None) -> Sink:
    """A runtime sink from its configuration.

    Raises:
        ConfigError: an unknown type, a missing URL or webhook secret.
    """
    import os

    environ = env if env is not None else dict(os.environ)
    name = config.name or config.type
    if config.type not in SINK_TYPES:
        raise ConfigError(
            f"detect.sinks: unknown type {config.type!r}; use {', '.join(SINK_TYPES)}"
        )
    if config.min_severity not in SEVERITIES:
        raise ConfigError(f"detect.sinks[{name}].min_severity: use one of {', '.join(SEVERITIES)}")
    if config.type == "stdout":
        return StdoutSink(name)
    if not config.url.startswith(("http://", "https://")):
        raise ConfigError(f"detect.sinks[{name}].url: an http(s) URL is required")
    if config.type == "webhook":
        secret = config.secret or environ.get(config.secret_env or "", "")
        if not secret:
            raise ConfigError(f"detect.sinks[{name}]: a webhook needs secret or secret_env")
        return WebhookSink(name, config.url, secret, config.timeout_seconds)
    if config.type == "slack":
        return SlackSink(name, config.url, config.timeout_seconds)
    return AlertmanagerSink(name, config.url, config.timeout_seconds)


class DetectMetrics:
    """Counters of alerts and deliveries, on the server's registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.raised = Counter(
            "kubetrail_alerts_raised", "Alerts raised", ["rule", "severity"], registry=r
        )
        self.delivered = Counter(
            "kubetrail_alert_deliveries", "Alerts delivered to a sink", ["sink"], registry=r
        )
        self.failures = Counter(
            "kubetrail_alert_delivery_failures",
            "Failed delivery attempts (each is retried until max attempts)",
            ["sink"],
            registry=r,
        )
        self.abandoned = Counter(
            "kubetrail_alert_deliveries_abandoned",
            "Alerts given up on after max attempts (still stored)",
            ["sink"],
            registry=r,
        )


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    alert: StoredAlert = field(compare=False)
    route: int = field(compare=False)
    attempt: int = field(compare=False, default=1)


class Dispatcher:
    """Delivers alerts to the sinks that want them, in a thread, with retries and backoff.

    Args:
        routes: ``(sink, config)`` pairs; the config's ``min_severity`` and ``rules`` route.
        store: where delivery states are written (``None``: not recorded).
        metrics: counters; default a private registry.
        max_attempts: tries per alert and sink before giving up (the alert stays stored).
        base_backoff: first retry delay in seconds (doubles each time, with jitter).
        max_backoff: the longest delay.
    """

    def __init__(
        self,
        routes: Sequence[tuple[Sink, SinkConfig]],
        *,
        store: Store | None = None,
        metrics: DetectMetrics | None = None,
        max_attempts: int = 8,
        base_backoff: float = 1.0,
        max_backoff: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.routes = list(routes)
        self.store = store
        self.metrics = metrics or DetectMetrics()
        self.max_attempts = max_attempts
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self._clock = clock
        self._jobs: list[_Job] = []
        self._seq = 0
        self._cv = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="kubetrail-sinks", daemon=True)

    def start(self) -> None:
        """Start the delivery thread."""
        self._thread.start()

    def wants(self, config: SinkConfig, alert: StoredAlert) -> bool:
        """Whether a sink takes this alert (severity at least its minimum; rule listed)."""
        if SEVERITIES.index(alert.severity) < SEVERITIES.index(config.min_severity):
            return False
        return not config.rules or any(fnmatch.fnmatchcase(alert.rule, p) for p in config.rules)

    def __call__(self, alerts: list[StoredAlert]) -> None:
        """Queue new alerts for every sink that wants them."""
        with self._cv:
            for alert in alerts:
                self.metrics.raised.labels(alert.rule, alert.severity).inc()
                for i, (sink, config) in enumerate(self.routes):
                    if self.wants(config, alert):
                        self._record(alert, sink, "pending", 0, None)
                        self._push(_Job(self._clock(), 0, alert, i))
            self._cv.notify()

    def _push(self, job: _Job) -> None:
        self._seq += 1
        job.seq = self._seq
        heapq.heappush(self._jobs, job)

    def stop(self, timeout: float = 5.0) -> None:
        """Try once more what is due now, then stop (pending retries stay recorded)."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for sink, _ in self.routes:
            close = getattr(sink, "close", None)
            if close is not None:
                close()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopping and (not self._jobs or self._jobs[0].due > self._clock()):
                    wait = self._jobs[0].due - self._clock() if self._jobs else None
                    self._cv.wait(wait)
                if self._stopping and (not self._jobs or self._jobs[0].due > self._clock()):
                    return
                job = heapq.heappop(self._jobs)
            self._deliver(job)

    def _deliver(self, job: _Job) -> None:
        sink, _ = self.routes[job.route]
        try:
            sink.send(job.alert)
        except Exception as exc:
            self.metrics.failures.labels(sink.name).inc()
            error = str(exc)[:300] or type(exc).__name__
            if job.attempt >= self.max_attempts:
                self.metrics.abandoned.labels(sink.name).inc()
                self._record(job.alert, sink, "failed", job.attempt, error)
                log.error("alert %s not delivered to %s: %s", job.alert.id, sink.name, error)
                return
            self._record(job.alert, sink, "retrying", job.attempt, error)
            delay = min(self.max_backoff, self.base_backoff * 2 ** (job.attempt - 1))
            delay *= 0.5 + random.random() / 2
            with self._cv:
                self._push(_Job(self._clock() + delay, 0, job.alert, job.route, job.attempt + 1))
            return
        self.metrics.delivered.labels(sink.name).inc()
        self._record(job.alert, sink, "delivered", job.attempt, None)

    def _record(
        self, alert: StoredAlert, sink: Sink, state: str, attempts: int, error: str | None
    ) -> None:
        if self.store is None:
            return
        try:
            set_delivery(self.store, alert, sink.name, state, attempts, error)
        except Exception as exc:  # recording must not stop deliveries
            log.error("cannot record delivery state of %s: %s", alert.id, exc)


def cooldown_of(seconds: int) -> timedelta:
    """The configured cooldown as a timedelta."""
    return timedelta(seconds=seconds)
