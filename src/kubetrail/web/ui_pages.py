"""The read-only pages: overview, search, event and identity."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import KubetrailError, ParseError, QueryError, StoreError, UsageError
from ..query import parse
from ..query.runner import QueryResult, parse_duration, run_query
from .alerts_view import list_alerts
from .overview import build_overview
from .queries import (
    RANGES,
    TimeRange,
    and_terms,
    plain,
    split_filter,
    term,
    time_range,
)
from .scope import ENV_PREFIX, ReadScope, environments, read_scope
from .stream_gaps import find_event, scope_gaps
from .ui import clusters, error_page, page, render
from .ui import fmt as _fmt
from .ui_context import in_thread, state
from .ui_data import run_identity

LISTING_FIELDS = ("time", "cluster", "user", "verb", "resource", "namespace", "name", "code")
LISTING_LIMIT = 100
#: The most rows of an aggregation the search page shows (the export has up to 10,000).
AGGREGATE_LIMIT = 1000


def _cluster(request: Request) -> str | None:
    """The selection as given (a cluster or ``env:NAME``): what links carry along."""
    return request.query_params.get("cluster") or None


def _scope(request: Request) -> ReadScope:
    """The store file and clusters the selection stands for (what queries read and filter on).

    Raises:
        UsageError: an unknown environment, or one stored in several files.
    """
    web = state(request)
    return read_scope(web.config, web.store, _cluster(request))


def search_url(query: str, window: TimeRange, cluster: str | None) -> str:
    """The search page of a query over a range and cluster (the URL holds the query)."""
    params = {"q": query, **window.params()}
    if cluster:
        params["cluster"] = cluster
    return "/ui/search?" + urlencode(params)


def _frame(request: Request, window: TimeRange, scope: ReadScope | None = None) -> dict[str, Any]:
    cluster = _cluster(request)
    return {
        "not_included": [a.as_dict() for a in scope.not_included] if scope else [],
        "clusters": clusters(request),
        "environments": environments(state(request).config),
        "env_prefix": ENV_PREFIX,
        "ranges": RANGES,
        "window": window,
        "link": lambda q: search_url(q, window, cluster),
        "fmt": _fmt,
        "term": term,
    }


@page()
async def overview(request: Request) -> Response:
    """``/ui/overview``: who did what, when and where, for a cluster and time range."""
    try:
        window = time_range(request.query_params)
    except UsageError as exc:
        return error_page(request, exc)
    web = state(request)
    try:
        scope = _scope(request)
    except UsageError as exc:
        return error_page(request, exc)
    data = await in_thread(build_overview, scope.store, window, scope.clusters)
    try:
        alerts: list[dict[str, Any]] | None = await in_thread(
            list_alerts, web.store, cluster=scope.clusters, limit=10
        )
    except StoreError:  # e.g. a read-only store without the alerts table: show the rest
        alerts = None
    gaps = await in_thread(scope_gaps, web.store, scope, window)
    verbs = sorted({v for counts in data.actions.values() for v in counts})
    chart = {
        "kind": "timeseries",
        "x": [plain(t) for t in data.timechart["x"]],
        "series": data.timechart["series"],
        "link": _bucket_link("", "verb", window, _cluster(request)),
    }
    context = {
        **_frame(request, window, scope),
        "data": data,
        "alerts": alerts,
        "gaps": gaps.silences,
        "audit_errors": gaps.audit_errors,
        "verbs": [v for v in ("create", "update", "patch", "delete") if v in verbs],
        "status_max": max([n for _, _, n in data.status] + [1]),
        "chart_json": script_json(chart),
        "chart_query": data.timechart["query"],
    }
    return render(request, "overview.html", context)


def script_json(value: Any) -> str:
    """JSON to embed in a ``<script type="application/json">`` element: ``<``, ``>`` and ``&``
    escaped, so that data (a user agent, an object name) can never close the element."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _bucket_link(
    base: str, field: str | None, window: TimeRange, cluster: str | None
) -> dict[str, Any]:
    """How a click on a time bucket (of a series named by ``field``) becomes a search."""
    seconds = int(parse_duration(window.span()).total_seconds())
    return {"base": base, "field": field, "span": seconds, "cluster": cluster or ""}


def _chart(result: QueryResult) -> dict[str, Any] | None:
    """A chart of an aggregation: lines for ``timechart``, bars for ``stats``/``top``."""
    rows = result.rows()
    if not rows:
        return None
    columns = list(result.columns)
    if columns[0] == "time" and len(columns) in (2, 3):
        series: dict[str, dict[str, Any]] = {}
        for row in rows:
            name = str(row[1]) if len(columns) == 3 else columns[-1]
            series.setdefault(name, {})[plain(row[0])] = row[-1]
        xs = sorted({x for s in series.values() for x in s})
        return {
            "kind": "timeseries",
            "x": xs,
            "series": {k: [v.get(x, 0) for x in xs] for k, v in series.items()},
        }
    numeric = [
        i
        for i, c in enumerate(columns)
        if all(
            isinstance(r[i], int | float) and not isinstance(r[i], bool)
            for r in rows
            if r[i] is not None
        )
        and c not in ("code",)
    ]
    labels = [i for i in range(len(columns)) if i not in numeric]
    if not numeric or not labels:
        return None
    y = numeric[0]
    return {
        "kind": "bar",
        "x": [" / ".join(_fmt(r[i]) for i in labels) for r in rows[:50]],
        "y": [r[y] for r in rows[:50]],
        "name": columns[y],
    }


def _filter_fields(columns: tuple[str, ...]) -> set[str]:
    """The result columns that name a field (a click on their value adds a filter)."""
    ok = set()
    for column in columns:
        try:
            parse(f"exists({column})")
        except QueryError:
            continue
        ok.add(column)
    return ok


@page()
async def search(request: Request) -> Response:
    """``/ui/search?q=``: run a query; errors are shown at their column."""
    params = request.query_params
    text = params.get("q", "")
    try:
        window = time_range(params)
    except UsageError as exc:
        return error_page(request, exc)
    cluster = _cluster(request)
    try:
        scope = _scope(request)
    except UsageError as exc:
        return error_page(request, exc)
    flt, stages = split_filter(text)
    context: dict[str, Any] = {**_frame(request, window, scope), "q": text, "error": None}
    try:
        parsed = parse(text)
        listing = not stages
        run_text = text
        if listing:
            shown = [*LISTING_FIELDS, "stage"] if parsed.names_stage else list(LISTING_FIELDS)
            run_text = f"{flt} | fields {', '.join(shown)}, id"
        result = await in_thread(
            run_query,
            scope.store,
            run_text,
            time_from=window.start,
            time_to=window.end,
            cluster=scope.clusters,
            limit=LISTING_LIMIT if listing else AGGREGATE_LIMIT,
        )
        histogram = None
        if listing or not parsed.is_aggregate:
            histogram = await in_thread(
                run_query,
                scope.store,
                f"{flt} | timechart span={window.span()} count()",
                time_from=window.start,
                time_to=window.end,
                cluster=scope.clusters,
            )
    except ParseError as exc:
        context["error"] = {
            "message": exc.description,
            "line": exc.line,
            "col": exc.col,
            "lines": (text.splitlines() or [""]),
            "highlight_len": max(len(exc.highlight), 1),
        }
        return render(request, "search.html", context, 400)
    except KubetrailError as exc:
        context["error"] = {
            "message": str(exc),
            "line": 0,
            "col": 0,
            "lines": [],
            "highlight_len": 0,
        }
        return render(request, "search.html", context, 400)
    columns = tuple(c for c in result.columns if not (listing and c == "id"))
    rows = [dict(zip(result.columns, r, strict=True)) for r in result.rows()]
    clickable = _filter_fields(columns)
    for row in rows:
        row["_add"] = {
            c: and_terms(flt, term(c, row[c])) + (f" {stages}" if stages else "") for c in clickable
        }
    export = {"q": text, **window.params(), **({"cluster": cluster} if cluster else {})}
    context.update(
        columns=columns,
        rows=rows,
        listing=listing,
        aggregate=parsed.is_aggregate,
        elapsed_ms=result.elapsed_ms + (histogram.elapsed_ms if histogram else 0),
        chart_json=script_json(_chart(result) if parsed.is_aggregate else None),
        histogram_json=script_json(
            _chart(histogram) | {"link": _bucket_link(flt, None, window, cluster)}
            if histogram and histogram.rows()
            else None
        ),
        histogram_total=sum(r[-1] for r in histogram.rows()) if histogram else None,
        export_csv="/api/query?" + urlencode({**export, "format": "csv"}),
        export_ndjson="/api/query?" + urlencode({**export, "format": "ndjson"}),
        limit=LISTING_LIMIT,
    )
    return render(request, "search.html", context)


@page()
async def event(request: Request) -> Response:
    """``/ui/event/{audit_id}``: every field, the bodies, other stages, nearby requests."""
    audit_id = request.path_params["audit_id"]
    view = await in_thread(find_event, state(request).store, audit_id)
    if view is None:
        return render(
            request, "error.html", {"message": f"no stored event has auditID {audit_id}"}, 404
        )
    last = view.stages[-1]
    window = TimeRange(None, None, "all")
    context = {
        **_frame(request, window),
        "view": view,
        "request_object": _pretty(last.get("requestObject")),
        "response_object": _pretty(last.get("responseObject")),
        "event_user": (last.get("user") or {}).get("username"),
        "around_rows": view.around.rows() if view.around else [],
        "around_columns": view.around.columns if view.around else (),
    }
    return render(request, "event.html", context)


def _pretty(obj: Any) -> str | None:
    return None if obj is None else json.dumps(obj, indent=2, ensure_ascii=False)


@page()
async def identity(request: Request) -> Response:
    """``/ui/identity?user=``: one user's or service account's activity."""
    user = request.query_params.get("user", "")
    if not user:
        return error_page(request, UsageError("give ?user=NAME"))
    try:
        window = time_range(request.query_params)
    except UsageError as exc:
        return error_page(request, exc)
    try:
        scope = _scope(request)
    except UsageError as exc:
        return error_page(request, exc)
    results = await in_thread(run_identity, scope.store, user, window, scope.clusters)
    context = {
        **_frame(request, window, scope),
        "who": user,
        "who_term": term("user", user),
        "results": results,
        "activity_json": script_json(
            _chart(results["activity"])
            | {"link": _bucket_link(term("user", user), "verb", window, _cluster(request))}
            if results["activity"].rows()
            else None
        ),
        "pivot": _pivot(results["verbs_resources"]),
    }
    return render(request, "identity.html", context)


def _pivot(result: QueryResult) -> dict[str, Any]:
    verbs: list[str] = []
    cells: dict[str, dict[str, int]] = {}
    for verb, resource, count in result.rows():
        verb, resource = verb or "", resource or ""
        if verb not in verbs:
            verbs.append(verb)
        cells.setdefault(resource, {})[verb] = int(count)
    return {"verbs": sorted(verbs), "cells": cells}


PAGE_ROUTES = [
    Route("/ui/overview", overview, methods=["GET"]),
    Route("/ui/search", search, methods=["GET"]),
    Route("/ui/event/{audit_id}", event, methods=["GET"]),
    Route("/ui/identity", identity, methods=["GET"]),
]
