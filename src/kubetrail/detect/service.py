"""Detections inside ``kubetrail serve``: rules, detector thread, sinks and the start-up check,
built from the ``detect`` section of the configuration."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

import pyarrow as pa
from prometheus_client import CollectorRegistry

from ..config import DetectConfig, ServerConfig
from ..store.base import Store
from .coverage import check_rules
from .detector import Detector, DetectorThread
from .environments import cluster_environments, environment_clusters
from .loader import RuleSet, load_ruleset
from .sinks import DetectMetrics, Dispatcher, build_sink

log = logging.getLogger("kubetrail.detect")


def event_stores(store: Store) -> list[Store]:
    """Every store that holds events: each file of a server whose clusters write to files of
    their own (a :class:`~kubetrail.store.layout.RoutedStore`), else the store itself."""
    stores = getattr(store, "stores", None)
    return list(stores()) if callable(stores) else [store]


def supports(store: Store) -> bool:
    """Whether alerts can be stored in this store (both engines keep them; see alertstore)."""
    return getattr(store, "dialect", "") in ("duckdb", "clickhouse")


class DetectionService:
    """The running detections of a server.

    Args:
        config: the ``detect`` section.
        store: the server's store (events and alerts).
        registry: the server's metrics registry.
        ruleset: rules to use instead of loading them from ``config``.
        server: the server's settings: its clusters' environments resolve
            ``environment=NAME`` in rules and are recorded with alerts.
    """

    def __init__(
        self,
        config: DetectConfig,
        store: Store,
        registry: CollectorRegistry | None = None,
        ruleset: RuleSet | None = None,
        server: ServerConfig | None = None,
    ) -> None:
        self.config = config
        self.ruleset = ruleset or load_ruleset(
            config.rule_dirs,
            builtin=config.builtin,
            disabled=config.disabled,
            variables=config.variable_values(),
            environments=environment_clusters(server) if server is not None else None,
        )
        self.warnings = self._check_policy()
        routes = [(build_sink(s), s) for s in config.sinks]
        self.metrics = DetectMetrics(registry)
        self.dispatcher = Dispatcher(routes, store=store, metrics=self.metrics)
        self.detector = Detector(
            store,
            self.ruleset.rules,
            notify=self.dispatcher,
            cooldown=timedelta(seconds=config.cooldown_seconds),
            environments=cluster_environments(server) if server is not None else None,
            event_stores=event_stores(store),
        )
        self.thread = DetectorThread(self.detector, interval=float(config.schedule_seconds))

    def _check_policy(self) -> list[str]:
        if not self.config.policy:
            return []
        from ..policy import load_policy_file

        found = check_rules(load_policy_file(self.config.policy), self.ruleset.rules)
        for b in found:
            log.warning("rule blind under %s: %s", self.config.policy, b.message)
        return [b.message for b in found]

    def start(self) -> None:
        """Start delivering and detecting."""
        self.dispatcher.start()
        self.thread.start()
        log.info(
            "detections: %d rules enabled, %d sink(s)",
            len(self.ruleset.enabled),
            len(self.dispatcher.routes),
        )

    def submit(self, tables: Sequence[pa.Table]) -> None:
        """Hand committed batches to the stateless rules."""
        self.thread.submit(tables)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish queued batches, try due deliveries, stop."""
        self.thread.stop(timeout)
        self.dispatcher.stop(timeout)
        self.detector.close()
