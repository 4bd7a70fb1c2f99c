"""The JSON API under ``/api``: what the UI pages use and what users script against.

Every route authenticates (a UI session or a bearer token with role viewer/admin, see
:func:`~kubetrail.web.session.web_principal`) and answers errors in the one JSON shape
``{ok, error, errors, status}``. The routes are described in ``openapi.json`` next to this
module (served at ``/api/openapi.json``).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import UsageError
from ..query import parse
from ..query.runner import run_query
from .api_alerts import ALERT_ROUTES
from .api_guard import api_route
from .errors import error_response
from .overview import build_overview
from .queries import ndjson_lines, parse_limit, plain, result_dict, time_range
from .scope import ReadScope, read_scope, selection_of
from .stream_gaps import find_event, scope_gaps
from .ui_context import HERE, in_thread, state
from .ui_data import simulate_policy

MAX_POLICY_BYTES = 1024 * 1024
#: The most rows one answer holds (an aggregation without ``limit`` is cut there too).
MAX_ROWS = 10_000
#: The clusters an export over "all clusters" left out (stored in files of their own).
NOT_INCLUDED_HEADER = "X-Kubetrail-Not-Included"


@api_route()
async def query(request: Request) -> Response:
    """``GET /api/query?q=&from=&to=&since=&cluster=|environment=&limit=&format=``."""
    params = request.query_params
    text = params.get("q", "")
    if not text.strip():
        raise UsageError("the parameter q (a query) is required")
    window = (
        time_range(params) if any(k in params for k in ("from", "to", "since", "range")) else None
    )
    scope = read_scope(state(request).config, state(request).store, selection_of(params))
    result = await in_thread(
        run_query,
        scope.store,
        text,
        time_from=window.start if window else None,
        time_to=window.end if window else None,
        cluster=scope.clusters,
        limit=parse_limit(params.get("limit"), MAX_ROWS)
        or (MAX_ROWS if parse(text).is_aggregate else None),
    )
    fmt = params.get("format", "json")
    apart = _not_included_header(scope)
    if fmt == "ndjson":
        body = "".join(line + "\n" for line in ndjson_lines(result))
        headers = _attachment("jsonl") | apart
        return Response(body, media_type="application/x-ndjson", headers=headers)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.columns)
        for row in result.rows():
            writer.writerow(_csv_cell(v) for v in row)
        return Response(out.getvalue(), media_type="text/csv", headers=_attachment("csv") | apart)
    if fmt != "json":
        raise UsageError("format must be json, ndjson or csv")
    return JSONResponse(result_dict(result) | _not_included(scope))


def _not_included(scope: ReadScope) -> dict[str, Any]:
    """``{"not_included": [...]}`` when "all clusters" left out clusters stored apart."""
    if not scope.not_included:
        return {}
    return {"not_included": [a.as_dict() for a in scope.not_included]}


def _not_included_header(scope: ReadScope) -> dict[str, str]:
    if not scope.not_included:
        return {}
    return {NOT_INCLUDED_HEADER: ",".join(a.cluster for a in scope.not_included)}


def _attachment(ext: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="kubetrail-query.{ext}"'}


#: A spreadsheet runs a cell that starts with one of these as a formula: an attacker controls
#: user agents, names and URIs, so exported text cells that start so get a leading quote
#: (OWASP "CSV injection"). Numbers are left alone.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    value = plain(value)
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


@api_route()
async def overview(request: Request) -> Response:
    """``GET /api/overview?range=&from=&to=&cluster=&environment=``: every widget with its query."""
    window = time_range(request.query_params)
    web = state(request)
    scope = read_scope(web.config, web.store, selection_of(request.query_params))
    data = await in_thread(build_overview, scope.store, window, scope.clusters)
    gaps = await in_thread(scope_gaps, web.store, scope, window)
    panels = {
        key: {
            "title": p.widget.title,
            "query": p.widget.query,
            "columns": list(p.columns),
            "rows": [
                {k: plain(v) for k, v in row.items() if k != "_q"} | {"search": row["_q"]}
                for row in p.rows
            ],
        }
        for key, p in data.panels.items()
    }
    body = {
        "range": window.params(),
        "panels": panels,
        "status_codes": [{"label": a, "search": b, "count": c} for a, b, c in data.status],
        "requests_by_verb": {
            "query": data.timechart["query"],
            "time": [plain(t) for t in data.timechart["x"]],
            "series": data.timechart["series"],
        },
        "gaps": gaps.as_dicts(),
        "elapsed_ms": round(data.elapsed_ms, 3),
    } | _not_included(scope)
    return JSONResponse(body)


@api_route()
async def event(request: Request) -> Response:
    """``GET /api/events/{audit_id}``: every stored stage and the user's nearby requests."""
    view = await in_thread(find_event, state(request).store, request.path_params["audit_id"])
    if view is None:
        return error_response(404, "no stored event has this auditID")
    return JSONResponse(
        {
            "auditID": view.audit_id,
            "cluster": view.cluster,
            "stages": [{k: v for k, v in s.items() if not k.startswith("_")} for s in view.stages],
            "around": {"query": view.around_query, **result_dict(view.around)}
            if view.around
            else None,
        }
    )


@api_route()
async def policy_simulate(request: Request) -> Response:
    """``POST /api/policy/simulate?since=24h``: the body is a Policy (YAML or JSON)."""
    body = await request.body()
    if len(body) > MAX_POLICY_BYTES:
        return error_response(413, "the policy is larger than 1 MiB")
    since = request.query_params.get("since") or None
    if since is not None:
        from ..policy.dbsim import parse_since

        parse_since(since)
    text = body.decode("utf-8", errors="replace")
    report = await in_thread(simulate_policy, state(request).store, text, since)
    return Response(json.dumps(report, default=str), media_type="application/json")


@api_route()
async def me(request: Request) -> Response:
    """``GET /api/me``: who is calling."""
    principal = request.state.principal
    return JSONResponse({"name": principal.name, "role": principal.role, "via": principal.via})


@api_route()
async def openapi(request: Request) -> Response:
    """``GET /api/openapi.json``: the description of this API."""
    return Response((HERE / "openapi.json").read_text(), media_type="application/json")


API_ROUTES = [
    Route("/api/query", query, methods=["GET"]),
    Route("/api/overview", overview, methods=["GET"]),
    Route("/api/events/{audit_id}", event, methods=["GET"]),
    Route("/api/policy/simulate", policy_simulate, methods=["POST"]),
    Route("/api/me", me, methods=["GET"]),
    Route("/api/openapi.json", openapi, methods=["GET"]),
    *ALERT_ROUTES,
]
