"""Prometheus metrics of the collector, on a registry of their own (one per application).

Names follow Prometheus conventions; every event-level counter has a ``cluster`` label.
Rejections are counted with their bounded ``reason``, refused requests with their status.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class IngestMetrics:
    """The collector's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "kubetrail_ingest_events_received", "Events received", ["cluster"], registry=r
        )
        self.stored = Counter(
            "kubetrail_ingest_events_stored", "Events newly stored", ["cluster"], registry=r
        )
        self.duplicates = Counter(
            "kubetrail_ingest_events_duplicate",
            "Events skipped as already stored",
            ["cluster"],
            registry=r,
        )
        self.rejected = Counter(
            "kubetrail_ingest_events_rejected",
            "Events refused (sent to quarantine)",
            ["cluster", "reason"],
            registry=r,
        )
        self.not_audit = Counter(
            "kubetrail_ingest_lines_not_audit",
            "Container-log lines a collector skipped as not audit events (not errors)",
            ["cluster"],
            registry=r,
        )
        self.bytes = Counter(
            "kubetrail_ingest_bytes", "Request body bytes (as sent)", ["cluster"], registry=r
        )
        self.batches = Counter(
            "kubetrail_ingest_batches",
            "Ingest requests by status",
            ["cluster", "status"],
            registry=r,
        )
        self.commit_seconds = Histogram(
            "kubetrail_ingest_commit_seconds",
            "Time to commit one batch to the store",
            ["cluster"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.request_seconds = Histogram(
            "kubetrail_ingest_request_seconds",
            "Time from request to answer of accepted batches",
            ["cluster"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "kubetrail_ingest_queue_depth", "Batches admitted and not yet answered", registry=r
        )
        self.queue_capacity = Gauge(
            "kubetrail_ingest_queue_capacity", "Batches that may be pending at once", registry=r
        )

        # The spool (docs/collector.md): acknowledged bytes not yet in the store, the time
        # from the answer to the store's commit (when queries see the batch), and any
        # difference between the duplicates answered and those the store found.
        self.spool_bytes = Gauge(
            "kubetrail_ingest_spool_bytes", "Spooled bytes not yet committed", registry=r
        )
        self.spool_capacity = Gauge(
            "kubetrail_ingest_spool_capacity_bytes", "max_spool_bytes", registry=r
        )
        self.spool_commit_seconds = Histogram(
            "kubetrail_ingest_spool_commit_seconds",
            "Time of one store transaction of spooled batches",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.visibility_seconds = Histogram(
            "kubetrail_ingest_visibility_seconds",
            "Time from the 200 answer to the batch's commit to the store",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.duplicate_mismatch = Counter(
            "kubetrail_ingest_duplicate_mismatch",
            "Events whose answer (new or duplicate) differed from the store's own finding",
            ["cluster"],
            registry=r,
        )

    async def endpoint(self, request: Request) -> Response:
        """``GET /metrics`` in the Prometheus text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
