"""A real ``kubetrail serve`` application with demo data, for the UI and API tests.

The server runs under uvicorn in a thread on a free loopback port; the store holds demo events
ending now (so the default "last 24 h" shows them) and one stored alert.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from live import ADMIN_TOKEN, STARTUP_SECONDS, base_config, free_socket

from kubetrail.config import ClusterConfig, ServerConfig, UserConfig
from kubetrail.detect.alertstore import record_alert
from kubetrail.store import open_store
from kubetrail.web import bootstrap
from kubetrail.web.app import create_app
from kubetrail.web.auth import hash_token
from kubetrail.web.passwords import hash_password
from kubetrail.web.server import uvicorn_config

VIEWER = ("vera", "viewer-password-1")
ADMIN = ("ada", "admin-password-1")
VIEWER_TOKEN = "viewer-token-0123456789"


@dataclass
class UIServer:
    url: str
    config: ServerConfig
    alert_id: str
    audit_id: str


@contextmanager
def ui_server(tmp: Path, events: int = 4000, secure: bool = True) -> Iterator[UIServer]:
    """Start the server with ``events`` demo events and one open alert; stop it afterwards.

    ``secure=False`` drops the cookies' ``Secure`` flag (httpx, unlike browsers, does not send
    such cookies to ``http://127.0.0.1``).
    """
    config = base_config(tmp / "ui.duckdb", demo_events=events, secure_cookies=secure)
    # Environments (issue 9): the demo cluster is development, prod is production.
    config.clusters.append(ClusterConfig(name="demo", environment="development"))
    next(c for c in config.clusters if c.name == "prod").environment = "production"
    config.users = [
        UserConfig(
            name=VIEWER[0],
            role="viewer",
            password_hash=hash_password(VIEWER[1]),
            token_sha256=[hash_token(VIEWER_TOKEN)],
        ),
        UserConfig(name=ADMIN[0], role="admin", password_hash=hash_password(ADMIN[1])),
    ]
    bootstrap.load_demo(config)
    with open_store(config.db) as store:
        row = store.query(
            "SELECT audit_id FROM events WHERE response_code = 403 AND is_final LIMIT 1"
        ).to_pylist()[0]
        alert, _ = record_alert(
            store,
            rule="k8s-denied-burst",
            title="Burst of denied requests",
            severity="high",
            cluster="demo",
            key="external-secrets",
            message="many 403s",
            time=datetime.now(UTC),
            audit_ids=[row["audit_id"]],
        )
    sock = free_socket()
    port = sock.getsockname()[1]
    config.listen = f"127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn_config(create_app(config), config, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.02)
        yield UIServer(f"http://127.0.0.1:{port}", config, alert.id, row["audit_id"])
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


__all__ = ["ADMIN", "ADMIN_TOKEN", "VIEWER", "VIEWER_TOKEN", "UIServer", "ui_server"]
