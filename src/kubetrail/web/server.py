"""Running the application under uvicorn, with TLS and client certificates.

uvicorn verifies client certificates against ``tls.client_ca`` but does not hand them to the
application, so :class:`TLSH11Protocol` adds the ASGI TLS extension
(``scope["extensions"]["tls"]["client_cert_chain"]``) to every request of a TLS connection.
Client certificates are optional at the TLS layer (``CERT_OPTIONAL``) so that bearer tokens
work over the same port; a certificate that is presented must verify.

SIGTERM and SIGINT are handled by uvicorn: it stops accepting, waits for the requests in flight
(each is answered after its commit), then runs the application's shutdown, which drains the
writer and closes the store; the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import threading
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..config import ServerConfig, parse_listen


class _TLSExtension:
    """Adds the ASGI ``tls`` extension (the verified client certificate) to every request."""

    app: ASGIApp

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        der = ssl_object.getpeercert(binary_form=True)
        tls: dict[str, Any] = {
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "tls_version": None,
            "cipher_suite": None,
        }
        self.app = _with_tls(self.app, tls)


class TLSH11Protocol(_TLSExtension, H11Protocol):
    """uvicorn's pure-Python h11 protocol with the ``tls`` extension."""


def http_protocol() -> type[asyncio.Protocol]:
    """The fastest HTTP/1.1 protocol installed (httptools, else h11), with the extension."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return TLSH11Protocol

    class TLSHttpToolsProtocol(_TLSExtension, HttpToolsProtocol):
        """uvicorn's httptools protocol with the ``tls`` extension."""

    return TLSHttpToolsProtocol


def _with_tls(app: ASGIApp, tls: dict[str, Any]) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        extensions = dict(scope.get("extensions") or {})
        extensions["tls"] = tls
        scope["extensions"] = extensions
        await app(scope, receive, send)

    return wrapped


def uvicorn_config(app: ASGIApp, config: ServerConfig, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration for an application and the server settings.

    Args:
        app: the ASGI application.
        config: listen address, TLS files, drain timeout.
        overrides: extra :class:`uvicorn.Config` arguments (``log_level``, ``fd``).
    """
    host, port = parse_listen(config.listen)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "http": http_protocol(),
        "loop": "auto",  # uvloop when installed
        "ws": "none",
        "lifespan": "on",
        "timeout_graceful_shutdown": config.drain_seconds,
        "access_log": False,
        "server_header": False,
        "log_level": "info",
    }
    if config.tls.cert:
        options.update(ssl_certfile=config.tls.cert, ssl_keyfile=config.tls.key)
        if config.tls.client_ca:
            options.update(ssl_ca_certs=config.tls.client_ca, ssl_cert_reqs=ssl.CERT_OPTIONAL)
    options.update(overrides)
    return uvicorn.Config(app, **options)


def run(app: ASGIApp, config: ServerConfig, **overrides: Any) -> bool:
    """Serve until SIGTERM/SIGINT; return whether the server started."""
    server = uvicorn.Server(uvicorn_config(app, config, **overrides))
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises a captured signal after its graceful shutdown, with the handler
        # that was installed before it started; a no-op one makes a drained SIGTERM exit 0.
        signal.signal(signal.SIGTERM, lambda *_: None)
    server.run()
    return bool(server.started)
