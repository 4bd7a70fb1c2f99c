"""The alerts page (acknowledge and resolve need the admin role) and the policy simulator."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..errors import PolicyError, UsageError
from ..policy.dbsim import parse_since
from .alerts_view import STATUSES, list_alerts, set_status
from .auth import ADMIN
from .queries import RANGES, TimeRange, and_terms, term
from .scope import ENV_PREFIX, environments, resolve_scope
from .ui import clusters, error_page, page, render
from .ui_context import in_thread, state
from .ui_data import simulate_policy
from .ui_pages import search_url

MAX_POLICY_BYTES = 1024 * 1024


@page()
async def alerts(request: Request) -> Response:
    """``/ui/alerts?status=&cluster=``: severity, rule, environment, first/last seen, count;
    links to the events. ``cluster`` is a cluster or ``env:NAME``."""
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        status = None
    cluster = request.query_params.get("cluster") or None
    try:
        scope = resolve_scope(state(request).config, cluster)
    except UsageError as exc:
        return error_page(request, exc)
    rows = await in_thread(
        list_alerts, state(request).store, status=status, cluster=scope, limit=200
    )
    for alert in rows:
        ids = alert["auditIDs"][:50]
        alert["search"] = search_url(
            and_terms(" or ".join(term("id", i) for i in ids) or "id=none"),
            TimeRange(None, None, "all"),
            alert["cluster"],
        )
    context = {
        "clusters": clusters(request),
        "environments": environments(state(request).config),
        "cluster": cluster or "",
        "env_prefix": ENV_PREFIX,
        "alerts": rows,
        "status": status or "",
        "statuses": STATUSES,
    }
    return render(request, "alerts.html", context)


@page(role=ADMIN)
async def change_status(request: Request) -> Response:
    """``POST /ui/alerts/{id}/status`` (admin, CSRF-checked form): acknowledge or resolve."""
    form = await request.form()
    principal = request.state.principal
    try:
        found = await in_thread(
            set_status,
            state(request).store,
            request.path_params["alert_id"],
            str(form.get("status", "")),
            principal.name or principal.role,
        )
    except UsageError as exc:
        return render(request, "error.html", {"message": str(exc)}, 400)
    if found is None:
        return render(request, "error.html", {"message": "no such alert"}, 404)
    return RedirectResponse("/ui/alerts", 303)


@page()
async def policy(request: Request) -> Response:
    """``/ui/policy``: paste or upload a Policy, pick a range, see the simulation report."""
    context = {
        "clusters": clusters(request),
        "ranges": {**RANGES, "all": "all stored"},
        "text": "",
        "since": "24h",
        "report": None,
        "error": "",
    }
    status = 200
    if request.method == "POST":
        form = await request.form()
        upload = form.get("file")
        text = str(form.get("policy", ""))
        if upload is not None and not isinstance(upload, str):
            data = await upload.read(MAX_POLICY_BYTES + 1)
            if data:
                text = data.decode("utf-8", errors="replace")
        since = str(form.get("since", "24h"))
        context.update(text=text[:MAX_POLICY_BYTES], since=since)
        try:
            if len(text) > MAX_POLICY_BYTES:
                raise UsageError("the policy is larger than 1 MiB")
            window = None if since == "all" else since
            if window is not None:
                parse_since(window)
            context["report"] = await in_thread(simulate_policy, state(request).store, text, window)
        except (PolicyError, UsageError) as exc:
            context["error"], status = str(exc), 400
    return render(request, "policy.html", context, status)


ADMIN_ROUTES = [
    Route("/ui/alerts", alerts, methods=["GET"]),
    Route("/ui/alerts/{alert_id}/status", change_status, methods=["POST"]),
    Route("/ui/policy", policy, methods=["GET", "POST"]),
]
