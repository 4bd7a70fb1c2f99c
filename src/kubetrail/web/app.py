"""The ASGI application: routes and middleware as lists, state built in the lifespan.

:func:`create_app` is the one factory; ``kubetrail serve`` runs it under uvicorn. Besides
ingest, health and metrics it serves the JSON API (``/api``, :mod:`.api`) and the web UI
(``/ui/``, :mod:`.ui`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from ..config import DetectConfig, ServerConfig
from ..quarantine import Quarantine, quarantine_path
from ..sources.apiserver_metrics import MetricsScraper, ScrapeMetrics, targets_of
from ..store import open_store
from ..store.base import Store
from ..store.duckdb import DuckDBStore
from ..store.layout import RoutedStore
from ..store.location import open_location, sidecar_base
from .api import API_ROUTES
from .auth import Authenticator
from .dedupe import KeyIndex
from .errors import http_exception, server_error
from .health import healthz, readyz
from .ingest import IngestState, ingest_events
from .metrics import IngestMetrics
from .retention import RetentionMetrics, RetentionScheduler
from .spool import Spool, spool_dir
from .spool_writer import SpoolWriter, replay
from .stored_keys import key_lookup, newest_stage_times
from .ui import ui_routes
from .ui_context import web_state
from .writer import Admission, BatchWriter

log = logging.getLogger("kubetrail.web")


def create_app(
    config: ServerConfig,
    *,
    store: Store | None = None,
    authenticator: Authenticator | None = None,
    detect: DetectConfig | None = None,
) -> Starlette:
    """Build the application of ``kubetrail serve``.

    Args:
        config: the server settings (store path, limits, credentials).
        store: an already open store to use instead of opening ``config.db`` (it is closed on
            shutdown all the same).
        authenticator: credentials to use instead of those of ``config``.
        detect: the detections' settings; ``None`` or ``enabled: false`` runs none.

    Returns:
        A Starlette application; its lifespan opens the store and starts the writer thread,
        and on shutdown commits every admitted batch before closing the store.
    """
    metrics = IngestMetrics()
    retention_metrics = RetentionMetrics(metrics.registry)
    scrape_metrics = ScrapeMetrics(metrics.registry)
    auth = authenticator or Authenticator.from_config(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        opened = store if store is not None else _open_stores(config)
        quarantine = Quarantine(quarantine_path(getattr(opened, "path", sidecar_base(config.db))))
        own = _own_quarantines(opened)
        detections = None
        if detect is not None and detect.enabled:
            from ..detect.service import DetectionService, supports

            if supports(opened):
                detections = DetectionService(detect, opened, metrics.registry, server=config)
                detections.start()
            else:
                log.warning("detections are off: this store cannot keep alerts")
        app.state.detections = detections
        on_commit = detections.submit if detections else None
        writer = _writer(config, opened, quarantine, own, on_commit, metrics)
        writer.start()
        scheduler = RetentionScheduler.for_server(opened, config, retention_metrics)
        scheduler.start()
        scraper = MetricsScraper(opened, targets_of(config), scrape_metrics)
        scraper.start()
        admission = Admission(config.limits.max_pending_batches)
        metrics.queue_capacity.set(admission.capacity)
        app.state.ingest = IngestState(
            auth=auth,
            writer=writer,
            admission=admission,
            metrics=metrics,
            limits=config.limits,
            limiter=anyio.CapacityLimiter(config.limits.parse_workers),
            redact=config.redact,
        )
        app.state.web = web_state(config, opened, auth)
        try:
            yield
        finally:
            # The server has stopped accepting and answered its requests; commit what is
            # left (nothing admitted stays unanswered) and close the store.
            admission.draining = True
            await anyio.to_thread.run_sync(scheduler.stop)
            await anyio.to_thread.run_sync(scraper.stop)
            await anyio.to_thread.run_sync(writer.stop, float(config.drain_seconds))
            if detections is not None:
                await anyio.to_thread.run_sync(detections.stop)
            quarantine.close()
            for q in own.values():
                q.close()
            opened.close()
            log.info("kubetrail stopped; the store is closed")

    routes = [
        Route("/ingest/v1/events", ingest_events, methods=["POST"]),
        Route("/ingest/v1/clusters/{cluster}/events", ingest_events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics.endpoint, methods=["GET"]),
        *API_ROUTES,
        *ui_routes(),
    ]
    handlers = {HTTPException: http_exception, Exception: server_error}
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)


def _writer(
    config: ServerConfig,
    store: Store,
    quarantine: Quarantine,
    own: dict[str, Quarantine],
    on_commit: Callable[[list[Any]], None] | None,
    metrics: IngestMetrics,
) -> BatchWriter | SpoolWriter:
    """The spooled writer on an embedded store (this process its only writer), else direct.

    The spool's replay of a crash's leftovers runs here, before the server takes requests.
    """
    limits = config.limits
    embedded = isinstance(store, DuckDBStore | RoutedStore) and store.path != ":memory:"
    if not embedded or not limits.max_spool_bytes:
        return BatchWriter(store, quarantine, own, on_commit=on_commit)
    assert isinstance(store, DuckDBStore | RoutedStore)
    spool = Spool(spool_dir(store.path))
    replay(store, spool)
    index = KeyIndex(key_lookup(store), newest_stage_times(store), limits.dedupe_keys)
    writer = SpoolWriter(
        store,
        spool,
        index,
        limits.max_spool_bytes,
        quarantine,
        own,
        on_commit=on_commit,
        metrics=metrics,
    )
    metrics.spool_capacity.set(limits.max_spool_bytes)
    return writer


def _open_stores(config: ServerConfig) -> Store:
    """``server.db``, or a :class:`RoutedStore` when clusters have store files of their own."""
    if not any(c.store for c in config.clusters):
        return open_location(config.db)
    return RoutedStore.open(config, open_store)  # per-cluster files: embedded stores only


def _own_quarantines(store: Store) -> dict[str, Quarantine]:
    """A quarantine next to each cluster's own store file (refused records stay with it)."""
    if not isinstance(store, RoutedStore):
        return {}
    by_path: dict[str, Quarantine] = {}
    out = {}
    for cluster, target in store.by_cluster.items():
        if target is not store.main:
            path = quarantine_path(target.path)
            out[cluster] = by_path.setdefault(str(path), Quarantine(path))
    return out
