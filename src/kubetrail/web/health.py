"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can take events now)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import error_response


async def healthz(request: Request) -> Response:
    """Liveness: 200 while the process serves HTTP."""
    return JSONResponse({"ok": True})


async def readyz(request: Request) -> Response:
    """Readiness: 200 while the writer runs and the server is not draining.

    A full write queue does not make the server unready (that would take a single replica out
    of its Service and turn 429s into connection errors); the body reports it, and the bytes
    of the spool not yet in the store (``spool_bytes``, when there is a spool).
    """
    state = request.app.state.ingest
    admission = state.admission
    body = {
        "ok": True,
        "pending_batches": admission.pending,
        "capacity": admission.capacity,
        "queue_full": admission.pending >= admission.capacity,
    }
    spooled = getattr(state.writer, "spooled_bytes", None)
    if spooled is not None:
        body["spool_bytes"] = spooled
    if admission.draining:
        return error_response(503, "the server is shutting down")
    if not state.writer.alive:
        return error_response(503, "the store writer is not running")
    return JSONResponse(body)
