"""Retention on a schedule inside ``kubetrail serve``, with its metrics.

A daemon thread runs :func:`kubetrail.store.retention.apply_retention` on every store file at
start and then every ``server.retention.interval``. The stores lock each operation, so the
writer thread keeps committing batches in between. Evictions by a size cap are logged as
warnings and counted in ``kubetrail_store_evicted_events`` (alert on any increase).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from ..config import ServerConfig
from ..store.layout import RoutedStore, store_layouts
from ..store.retention import RetentionPolicy, apply_retention, parse_duration

log = logging.getLogger("kubetrail.retention")


class RetentionMetrics:
    """Counters of what retention and size caps removed, and the size of each store."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.removed = Counter(
            "kubetrail_retention_removed_events",
            "Events removed because they were older than their cluster's retention",
            ["cluster"],
            registry=registry,
        )
        self.evicted = Counter(
            "kubetrail_store_evicted_events",
            "Events evicted because a store exceeded its max_size (a warning: raise the cap)",
            ["cluster"],
            registry=registry,
        )
        self.used_bytes = Gauge(
            "kubetrail_store_used_bytes",
            "Bytes in use in a store file",
            ["store"],
            registry=registry,
        )
        self.runs = Counter(
            "kubetrail_retention_runs",
            "Scheduled retention runs by outcome",
            ["outcome"],
            registry=registry,
        )


class RetentionScheduler:
    """Runs retention on every store of the server, now and then every ``interval`` seconds.

    Args:
        targets: each store with its retention policy.
        interval: seconds between runs.
        metrics: where removals are counted.
    """

    def __init__(
        self,
        targets: list[tuple[object, RetentionPolicy]],
        interval: float,
        metrics: RetentionMetrics,
    ) -> None:
        self.targets = targets
        self.interval = interval
        self.metrics = metrics
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kubetrail-retention", daemon=True)

    @classmethod
    def for_server(
        cls, store: object, config: ServerConfig, metrics: RetentionMetrics
    ) -> RetentionScheduler:
        """The scheduler of the server's store(s), with the configured policies."""
        stores = store.stores() if isinstance(store, RoutedStore) else [store]
        policies = {_key(layout.path): layout.policy for layout in store_layouts(config)}
        targets = [
            # A ClickHouse store has no file: its policy is that of server.db (its URL).
            (s, policies.get(_key(str(getattr(s, "path", None) or config.db)), RetentionPolicy()))
            for s in stores
        ]
        active = [(s, p) for s, p in targets if p.default or p.clusters or p.max_size]
        return cls(active, parse_duration(config.retention.interval).total_seconds(), metrics)

    def start(self) -> None:
        """Start the thread (nothing to do without a retention or a size cap)."""
        if self.targets:
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the run in progress, if any."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_once(self) -> None:
        """Apply retention to every store once; a failure is logged and counted, not raised."""
        for store, policy in self.targets:
            try:
                report = apply_retention(store, policy, actor="kubetrail serve (schedule)")  # type: ignore[arg-type]
            except Exception as exc:  # the server keeps running; the next run retries
                log.error("retention failed on %s: %s", getattr(store, "path", "?"), exc)
                self.metrics.runs.labels("error").inc()
                continue
            self.metrics.runs.labels("ok").inc()
            self.metrics.used_bytes.labels(report.store).set(report.used_bytes_after)
            for removal in report.removals:
                if removal.kind == "eviction":
                    self.metrics.evicted.labels(removal.cluster).inc(removal.events)
                    log.warning(
                        "%s: evicted %d events of %s (store over max_size %s bytes)",
                        report.store,
                        removal.events,
                        removal.cluster,
                        report.max_size,
                    )
                else:
                    self.metrics.removed.labels(removal.cluster).inc(removal.events)
                    log.info(
                        "%s: removed %d events of %s older than %s",
                        report.store,
                        removal.events,
                        removal.cluster,
                        removal.retention,
                    )

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval)


def _key(path: str) -> str:
    return path if path in ("", ":memory:") else str(Path(path).resolve())
