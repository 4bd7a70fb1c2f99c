"""What every UI page and ``/api`` route needs: the store, credentials, sessions, templates.

Built once by :func:`web_state` in the application's lifespan and kept in ``app.state.web``.
Store calls run in a worker thread (:func:`in_thread`) so the event loop keeps serving ingest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from ..config import ServerConfig
from ..store.base import Store
from .auth import Authenticator
from .session import Sessions, session_secret

T = TypeVar("T")
HERE = Path(__file__).parent


@dataclass
class WebState:
    """The shared state of the UI and the API."""

    config: ServerConfig
    store: Store
    auth: Authenticator
    sessions: Sessions
    templates: Jinja2Templates


def web_state(config: ServerConfig, store: Store, auth: Authenticator) -> WebState:
    """Build the UI/API state for an open store.

    Cookies are ``Secure`` when the server speaks TLS, or when ``server.secure_cookies`` asks
    for it on plain HTTP (browsers accept such cookies from ``localhost``/``127.0.0.1`` only).
    """
    secure = bool(config.tls.cert) or config.secure_cookies
    sessions = Sessions(session_secret(config), secure=secure)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    return WebState(config, store, auth, sessions, templates)


def state(request: Request) -> WebState:
    """The :class:`WebState` of the application serving ``request``."""
    web: WebState = request.app.state.web
    return web


async def in_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking store call off the event loop."""
    return await anyio.to_thread.run_sync(lambda: func(*args, **kwargs))
