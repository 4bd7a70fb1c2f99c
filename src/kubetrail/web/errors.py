"""The one JSON shape of every refused request: ``{ok, error, errors, status}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


def error_response(
    status: int,
    message: str,
    errors: list[Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON error response.

    Args:
        status: the HTTP status.
        message: one sentence saying what is wrong.
        errors: structured details (default: ``[message]``).
        headers: extra headers (``Retry-After``, ``WWW-Authenticate``).
    """
    body = {"ok": False, "error": message, "errors": errors or [message], "status": status}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (404, 405) in the kubetrail shape."""
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """An unexpected exception: 500 without internals in the body."""
    return error_response(500, "internal error; see the server log")
