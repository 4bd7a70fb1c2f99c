"""The ASGI application: routes and middleware as lists, state built in the lifespan.

:func:`create_app` is the one factory; ``kubetrail serve`` runs it under uvicorn and the web
API of a later issue adds its routes to :data:`ROUTES`-like lists of its own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from ..config import DetectConfig, ServerConfig
from ..quarantine import Quarantine, quarantine_path
from ..store import open_store
from ..store.base import Store
from .auth import Authenticator
from .errors import http_exception, server_error
from .health import healthz, readyz
from .ingest import IngestState, ingest_events
from .metrics import IngestMetrics
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
    auth = authenticator or Authenticator.from_config(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        opened = store if store is not None else open_store(config.db)
        quarantine = Quarantine(quarantine_path(getattr(opened, "path", config.db)))
        detections = None
        if detect is not None and detect.enabled:
            from ..detect.service import DetectionService, supports

            if supports(opened):
                detections = DetectionService(detect, opened, metrics.registry)
                detections.start()
            else:
                log.warning("detections are off: alerts are stored in the embedded store only")
        app.state.detections = detections
        writer = BatchWriter(opened, quarantine, detections.submit if detections else None)
        writer.start()
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
        try:
            yield
        finally:
            # The server has stopped accepting and answered its requests; commit what is
            # left (nothing admitted stays unanswered) and close the store.
            admission.draining = True
            await anyio.to_thread.run_sync(writer.stop, float(config.drain_seconds))
            if detections is not None:
                await anyio.to_thread.run_sync(detections.stop)
            quarantine.close()
            opened.close()
            log.info("kubetrail stopped; the store is closed")

    routes = [
        Route("/ingest/v1/events", ingest_events, methods=["POST"]),
        Route("/ingest/v1/clusters/{cluster}/events", ingest_events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics.endpoint, methods=["GET"]),
    ]
    handlers = {HTTPException: http_exception, Exception: server_error}
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
