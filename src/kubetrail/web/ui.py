"""The web UI under ``/ui/``: login and logout, the shared page frame, static files.

Pages are rendered on the server (Jinja2, autoescaped); a little JavaScript of our own draws
the charts with plotly.js, which is served from the installed ``plotly`` package (never a CDN:
clusters are often offline). Every form carries the session's CSRF token.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import quote as urlquote
from urllib.parse import urlencode

from sqlglot import exp
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import KubetrailError
from ..store.base import EVENTS_TABLE
from .auth import ADMIN, VIEWER, AuthError
from .queries import term
from .scope import event_stores
from .session import Session, check_form_csrf, login, web_principal
from .ui_context import HERE, in_thread, state

Page = Callable[[Request], Awaitable[Response]]
_CLUSTERS: dict[int, tuple[float, list[str]]] = {}
#: Security headers of every page: only our own scripts run; plotly injects styles.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def plotly_js() -> Path:
    """plotly.min.js of the installed ``plotly`` package."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def page(role: str = VIEWER) -> Callable[[Page], Page]:
    """A UI page: log in first (redirect), check ``role`` and, on POST, the form's CSRF token."""

    def wrap(handler: Page) -> Page:
        @wraps(handler)
        async def run(request: Request) -> Response:
            web = state(request)
            session = web.sessions.get(request)
            try:
                if session is None and "authorization" not in request.headers:
                    raise AuthError(401, "log in first")
                if session is None:  # a bearer token (scripts); no cookie, so no CSRF
                    principal = web_principal(request, web.auth, web.sessions, role=role)
                else:
                    principal = session.principal
                    request.state.session = session
                    if request.method == "POST":
                        form = await request.form()
                        check_form_csrf(session, str(form.get("csrf", "")))
                    if role == ADMIN and principal.role != ADMIN:
                        raise AuthError(403, "this action needs the admin role")
                request.state.principal = principal
            except AuthError as exc:
                if exc.status == 401:
                    target = request.url.path + (
                        f"?{request.url.query}" if request.url.query else ""
                    )
                    return RedirectResponse(f"/ui/login?next={urlquote(target)}", 303)
                return render(request, "error.html", {"message": exc.message}, exc.status)
            try:
                return await handler(request)
            finally:
                await request.close()  # the temporary files of an uploaded form

        return run

    return wrap


def fmt(value: Any) -> str:
    """A cell as text."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    """Render a page with the frame's context (user, CSRF token, cluster list, range)."""
    session: Session | None = getattr(request.state, "session", None)
    principal = getattr(request.state, "principal", None)
    params = request.query_params
    base = {
        "user": principal.name if principal else None,
        "role": principal.role if principal else None,
        "csrf": session.csrf if session else "",
        "clusters": context.pop("clusters", []),
        "cluster": params.get("cluster", ""),
        "range": params.get("range", "24h" if not params.get("from") else "custom"),
        "time_from": params.get("from", ""),
        "time_to": params.get("to", ""),
        "path": request.url.path,
        "qs": urlencode,
        "fmt": fmt,
        "term": term,
    }
    response = state(request).templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status
    )
    response.headers.update(HEADERS)
    return response


def clusters(request: Request) -> list[str]:
    """The stored clusters of every store file, and the configured ones (cached for a minute)."""
    web = state(request)
    store = web.store
    cached = _CLUSTERS.get(id(store))
    if cached and cached[0] > time.monotonic():
        return cached[1]
    sql = exp.select("cluster").distinct().from_(EVENTS_TABLE).order_by("cluster").limit(500)
    found = {c.name for c in web.config.clusters}
    for s in event_stores(store):
        found.update(str(c) for c in s.query(sql.sql(s.dialect)).column(0).to_pylist())
    names = sorted(found)
    _CLUSTERS[id(store)] = (time.monotonic() + 60, names)
    return names


async def login_page(request: Request) -> Response:
    """``GET /ui/login`` shows the form; ``POST`` checks it and starts a session."""
    web = state(request)
    nxt = request.query_params.get("next", "/ui/overview")
    if not nxt.startswith("/ui/") or nxt.startswith("//"):
        nxt = "/ui/overview"  # no open redirect
    error = ""
    status = 200
    if request.method == "POST":
        form = await request.form()
        name, password = str(form.get("user", "")).strip(), str(form.get("password", ""))
        if not web.sessions.check_login_nonce(request, str(form.get("csrf", ""))):
            error, status = "The form expired; please try again.", 403
        else:
            try:
                who, role = await in_thread(login, web.config, web.auth, name, password)
            except AuthError as exc:
                error, status = exc.message, exc.status
            else:
                response = RedirectResponse(nxt, 303)
                web.sessions.create(response, who, role)
                return response
    placeholder = Response()
    nonce = web.sessions.login_nonce(request, placeholder)
    response = render(
        request, "login.html", {"next": nxt, "error": error, "login_csrf": nonce}, status
    )
    for key, value in placeholder.raw_headers:
        if key == b"set-cookie":
            response.raw_headers.append((key, value))
    return response


@page()
async def logout(request: Request) -> Response:
    """``POST /ui/logout``: end the session (CSRF-checked like every form)."""
    response = RedirectResponse("/ui/login", 303)
    state(request).sessions.end(request, response)
    return response


async def home(request: Request) -> Response:
    """``/`` and ``/ui/`` lead to the overview."""
    return RedirectResponse("/ui/overview", 303)


async def plotly_file(request: Request) -> Response:
    """plotly.min.js from the installed package, cached by the browser for a day."""
    return FileResponse(
        plotly_js(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


def error_page(request: Request, exc: KubetrailError, status: int = 400) -> Response:
    """A page that says what went wrong."""
    return render(request, "error.html", {"message": str(exc)}, status)


def ui_routes() -> list[Route | Mount]:
    """Every route of the UI (the pages live in :mod:`ui_pages` and :mod:`ui_admin`)."""
    from .ui_admin import ADMIN_ROUTES
    from .ui_pages import PAGE_ROUTES

    return [
        Route("/", home, methods=["GET"]),
        Route("/ui", home, methods=["GET"]),
        Route("/ui/", home, methods=["GET"]),
        Route("/ui/login", login_page, methods=["GET", "POST"]),
        Route("/ui/logout", logout, methods=["POST"]),
        Route("/ui/vendor/plotly.min.js", plotly_file, methods=["GET"]),
        Mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        *PAGE_ROUTES,
        *ADMIN_ROUTES,
    ]
