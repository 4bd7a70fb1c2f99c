"""Authentication and error mapping shared by every ``/api`` route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from starlette.requests import Request
from starlette.responses import Response

from ..errors import ParseError, PolicyError, QueryError, StoreError, UsageError
from .auth import VIEWER, AuthError
from .errors import error_response
from .session import web_principal
from .ui_context import state

Handler = Callable[[Request], Awaitable[Response]]


def api_route(role: str = VIEWER) -> Callable[[Handler], Handler]:
    """Authenticate (and check ``role``), then map kubetrail errors to the JSON error shape."""

    def wrap(handler: Handler) -> Handler:
        @wraps(handler)
        async def run(request: Request) -> Response:
            web = state(request)
            try:
                request.state.principal = web_principal(request, web.auth, web.sessions, role=role)
                return await handler(request)
            except AuthError as exc:
                headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
                return error_response(exc.status, exc.message, headers=headers)
            except ParseError as exc:
                detail = {
                    "description": exc.description,
                    "line": exc.line,
                    "col": exc.col,
                    "highlight": exc.highlight,
                }
                return error_response(400, str(exc), [detail])
            except (QueryError, UsageError, PolicyError) as exc:
                return error_response(400, str(exc))
            except StoreError as exc:
                return error_response(503, str(exc))

        return run

    return wrap
