"""``/api/alerts``: list, read and change the status of alerts (changing needs admin)."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import UsageError
from ..query.runner import parse_instant
from . import alerts_view
from .api_guard import api_route
from .auth import ADMIN
from .errors import error_response
from .queries import parse_limit
from .scope import resolve_scope, selection_of
from .ui_context import in_thread, state


@api_route()
async def list_alerts(request: Request) -> Response:
    """``GET /api/alerts?status=&cluster=|environment=&since=&limit=``: ``cluster=env:NAME`` or
    ``environment=NAME`` keeps the alerts of the clusters the configuration labels NAME."""
    params = request.query_params
    scope = resolve_scope(state(request).config, selection_of(params))
    alerts = await in_thread(
        alerts_view.list_alerts,
        state(request).store,
        since=parse_instant(params["since"]) if params.get("since") else None,
        status=params.get("status") or None,
        cluster=scope,
        limit=parse_limit(params.get("limit"), 1000) or 100,
    )
    return JSONResponse({"alerts": alerts})


@api_route()
async def get_alert(request: Request) -> Response:
    """``GET /api/alerts/{id}``."""
    alert = await in_thread(
        alerts_view.get_alert, state(request).store, request.path_params["alert_id"]
    )
    if alert is None:
        return error_response(404, "no such alert")
    return JSONResponse(alert)


@api_route(role=ADMIN)
async def set_status(request: Request) -> Response:
    """``POST /api/alerts/{id}/status`` with ``{"status": "acknowledged"}`` (admin only)."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise UsageError('the body must be JSON: {"status": "acknowledged"}') from None
    status = body.get("status") if isinstance(body, dict) else None
    if not isinstance(status, str):
        raise UsageError("the body must name a status: open, acknowledged or resolved")
    alert = await in_thread(
        alerts_view.set_status,
        state(request).store,
        request.path_params["alert_id"],
        status,
        request.state.principal.name or request.state.principal.role,
    )
    if alert is None:
        return error_response(404, "no such alert")
    return JSONResponse(alert)


ALERT_ROUTES = [
    Route("/api/alerts", list_alerts, methods=["GET"]),
    Route("/api/alerts/{alert_id}", get_alert, methods=["GET"]),
    Route("/api/alerts/{alert_id}/status", set_status, methods=["POST"]),
]
