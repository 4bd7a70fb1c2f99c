"""Scraping the API servers' ``/metrics`` for their audit counters (issue 9, gaps).

kube-apiserver counts the audit events it generated (``apiserver_audit_event_total``) and those
a backend plugin failed to send (``apiserver_audit_error_total{plugin}``); a webhook backend
that drops events leaves no trace in the events themselves. For each cluster with
``metrics: {url, token_file, ca_file, interval}`` in the configuration, :class:`MetricsScraper`
fetches the endpoint on schedule (a bearer token read from ``token_file`` at every scrape, TLS
checked against ``ca_file``), parses the Prometheus text format with ``prometheus_client``'s
parser and appends the two counters to the store (:mod:`kubetrail.store.audit_counters`).

A scrape that fails (unreachable, refused, not the text format) is counted in
``kubetrail_apiserver_scrapes_total{cluster, outcome="failed"}`` and logged; the scraper
carries on with the next one.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.parser import text_string_to_metric_families

from ..config import ServerConfig
from ..errors import SourceError
from ..store.audit_counters import METRICS, Sample, record_samples
from ..store.base import Store
from ..store.retention import parse_duration

log = logging.getLogger("kubetrail.scrape")

#: The most bytes of one ``/metrics`` answer read (an API server's is a few MB).
MAX_BYTES = 64 * 1024 * 1024
_ACCEPT = "text/plain;version=0.0.4"


@dataclass(frozen=True)
class MetricsTarget:
    """One cluster's endpoint: where, how to authenticate, how often."""

    cluster: str
    url: str
    token_file: str | None = None
    ca_file: str | None = None
    interval: float = 60.0
    timeout: float = 10.0


def targets_of(config: ServerConfig) -> list[MetricsTarget]:
    """The scrape targets of the clusters configured with ``metrics``."""
    out = []
    for cluster in config.clusters:
        m = cluster.metrics
        if m is not None:
            interval = parse_duration(m.interval, f"clusters[{cluster.name}].metrics.interval")
            out.append(
                MetricsTarget(
                    cluster.name,
                    m.url,
                    m.token_file,
                    m.ca_file,
                    interval.total_seconds(),
                    m.timeout_seconds,
                )
            )
    return out


def parse_samples(text: str, cluster: str, at: datetime) -> list[Sample]:
    """The audit counters in a Prometheus text exposition.

    Only the lines of the two audit counters are handed to the parser (an API server exposes
    thousands of series; the parser is pure Python).

    Raises:
        SourceError: the audit lines are not valid Prometheus text.
    """
    wanted = "\n".join(line for line in text.splitlines() if _audit_line(line))
    samples = []
    try:
        for family in text_string_to_metric_families(wanted + "\n"):
            for sample in family.samples:
                if sample.name in METRICS:
                    plugin = sample.labels.get("plugin", "")
                    samples.append(Sample(cluster, at, sample.name, plugin, float(sample.value)))
    except ValueError as exc:
        raise SourceError(f"{cluster}: not the Prometheus text format: {exc}") from exc
    return samples


def _audit_line(line: str) -> bool:
    if line.startswith(METRICS):
        return True
    return line.startswith(("# HELP ", "# TYPE ")) and line.split(" ", 3)[2:3] in (
        [m] for m in METRICS
    )


def scrape(target: MetricsTarget, client: httpx.Client | None = None) -> list[Sample]:
    """Fetch and parse one target now.

    Raises:
        SourceError: the token cannot be read, the endpoint cannot be reached or answers
            other than 200, or the answer is not the text format.
    """
    headers = {"Accept": _ACCEPT}
    if target.token_file:
        try:
            token = Path(target.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SourceError(f"{target.cluster}: cannot read {target.token_file}: {exc}") from exc
        headers["Authorization"] = f"Bearer {token}"
    own = client is None
    http = client or _client(target)
    at = datetime.now(UTC).replace(tzinfo=None)
    try:
        with http.stream("GET", target.url, headers=headers, timeout=target.timeout) as response:
            if response.status_code != 200:
                raise SourceError(f"{target.cluster}: {target.url}: HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise SourceError(f"{target.cluster}: {target.url}: answer over {MAX_BYTES}")
    except httpx.HTTPError as exc:
        raise SourceError(f"{target.cluster}: {target.url}: {exc or type(exc).__name__}") from exc
    finally:
        if own:
            http.close()
    return parse_samples(body.decode("utf-8", errors="replace"), target.cluster, at)


def _client(target: MetricsTarget) -> httpx.Client:
    """A client that trusts ``ca_file`` (or the system CAs) for the target.

    Raises:
        SourceError: the CA file cannot be read.
    """
    verify: ssl.SSLContext | bool = True
    if target.ca_file:
        try:
            verify = ssl.create_default_context(cafile=target.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise SourceError(f"{target.cluster}: cannot load {target.ca_file}: {exc}") from exc
    return httpx.Client(verify=verify, timeout=target.timeout, follow_redirects=False)


class ScrapeMetrics:
    """The scraper's own metrics on the server's registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.scrapes = Counter(
            "kubetrail_apiserver_scrapes",
            "Scrapes of an API server's /metrics by outcome (ok, failed)",
            ["cluster", "outcome"],
            registry=registry,
        )
        self.up = Gauge(
            "kubetrail_apiserver_scrape_up",
            "1 when the last scrape of the cluster's API server metrics succeeded, else 0",
            ["cluster"],
            registry=registry,
        )
        self.audit_errors = Gauge(
            "kubetrail_apiserver_audit_errors",
            "apiserver_audit_error_total of the cluster's API server at the last scrape",
            ["cluster", "plugin"],
            registry=registry,
        )


class MetricsScraper:
    """Scrapes every target on its own interval, in one thread, and stores the samples.

    Args:
        store: where samples go (the server's main store, next to the alerts).
        targets: the endpoints.
        metrics: the scraper's metrics.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        store: Store,
        targets: Sequence[MetricsTarget],
        metrics: ScrapeMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.targets = list(targets)
        self.metrics = metrics or ScrapeMetrics()
        self.clock = clock
        self._clients: dict[str, httpx.Client] = {}
        self._due = {t.cluster: 0.0 for t in self.targets}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kubetrail-scrape", daemon=True)

    def scrape_once(self, target: MetricsTarget) -> bool:
        """Scrape one target and store its samples; ``False`` (counted, logged) on failure."""
        try:
            if target.cluster not in self._clients:
                self._clients[target.cluster] = _client(target)
            samples = scrape(target, self._clients[target.cluster])
            record_samples(self.store, samples)
        except Exception as exc:  # the server keeps running whatever the endpoint does
            self.metrics.scrapes.labels(target.cluster, "failed").inc()
            self.metrics.up.labels(target.cluster).set(0)
            log.warning("scrape of %s failed: %s", target.cluster, exc)
            return False
        self.metrics.scrapes.labels(target.cluster, "ok").inc()
        self.metrics.up.labels(target.cluster).set(1)
        for s in samples:
            if s.metric == "apiserver_audit_error_total":
                self.metrics.audit_errors.labels(s.cluster, s.plugin).set(s.value)
        return True

    def run_due(self) -> int:
        """Scrape every target whose interval has passed; the number scraped."""
        now = self.clock()
        done = 0
        for target in self.targets:
            if now >= self._due[target.cluster]:
                self._due[target.cluster] = now + target.interval
                self.scrape_once(target)
                done += 1
        return done

    def start(self) -> None:
        """Start scraping (nothing to do without targets)."""
        if self.targets:
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the scrape under way."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for client in self._clients.values():
            client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_due()
            wait = min(self._due.values()) - self.clock()
            self._stop.wait(max(0.05, min(wait, 1.0)))
