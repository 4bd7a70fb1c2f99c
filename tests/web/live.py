"""Helpers of the web tests: credentials, a server config, payloads and the error-shape check.

A module with a unique name (not ``conftest``) so that test modules can import it whatever
other ``conftest`` modules the whole suite loads.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from kubetrail.config import ClusterConfig, ServerConfig
from kubetrail.demo import generate_events
from kubetrail.web.auth import hash_token

PROD_TOKEN = "prod-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"
STARTUP_SECONDS = 20.0
PATH = "/ingest/v1/events"
AUTH = {"Authorization": f"Bearer {PROD_TOKEN}"}


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with free_socket() as sock:
        return int(sock.getsockname()[1])


def base_config(db: Path, **overrides: Any) -> ServerConfig:
    config = ServerConfig(
        db=str(db),
        clusters=[
            ClusterConfig(name="prod", token_sha256=[hash_token(PROD_TOKEN)]),
            ClusterConfig(name="dev", cert_names=["dev"]),
        ],
        admin_token_sha256=[hash_token(ADMIN_TOKEN)],
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def demo_events(n: int, seed: int = 11) -> list[dict[str, Any]]:
    end = datetime(2026, 1, 1, tzinfo=UTC)
    return [json.loads(line) for line in generate_events(n, seed=seed, end=end)]


def event_list(items: list[Any], version: str = "audit.k8s.io/v1") -> dict[str, Any]:
    return {"kind": "EventList", "apiVersion": version, "items": items}


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The one error shape of every refused request."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False and body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["errors"], list) and body["errors"]
    return body


def cluster_metric(url: str, name: str, cluster: str = "prod") -> float:
    """The value of one per-cluster series of the server's /metrics (0 when absent)."""
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(f'{name}{{cluster="{cluster}"}}'):
            return float(line.split()[-1])
    return 0.0


def wait_for(predicate: Any, seconds: float = 30.0) -> None:
    """Poll ``predicate`` every 50 ms until it holds; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")
