"""A production cluster's alerts stay in its own store file (issue 9).

A live server with a production cluster that writes to a file of its own and a development
cluster on ``server.db``; an alert is raised on each. ``/api/alerts`` reads every file for "all
clusters" and the cluster's file for one cluster or environment; a production alert is
acknowledged by id; after the server stops, the files are opened and looked at: the production
alert (and its delivery state) is in the production file and nowhere in ``server.db``. The
``kubetrail alerts --config`` command reads the same files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from live import (
    ADMIN_TOKEN,
    PATH,
    PROD_TOKEN,
    STARTUP_SECONDS,
    assert_error,
    event_list,
    free_socket,
    wait_for,
)

from kubetrail.config import ClusterConfig, DetectConfig, ServerConfig, SinkConfig
from kubetrail.demo import generate_events
from kubetrail.store import open_store
from kubetrail.web.app import create_app
from kubetrail.web.auth import hash_token
from kubetrail.web.server import uvicorn_config

DEV_TOKEN = "dev-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
KUBETRAIL = [sys.executable, "-m", "kubetrail"]  # the interpreter running the tests
RULES = """
rules:
  - id: test.create
    title: A create
    description: stateless, one alert per cluster and user
    severity: high
    when: 'verb=create'
    key: [user]
    output: '{user} created {resource} in {cluster}'
"""
CONFIG = """
server:
  db: {db}
  clusters:
    - name: dev
      environment: development
    - name: prod
      environment: production
      store: {prod}
"""


@dataclass
class Server:
    url: str
    main: Path
    prod: Path
    config: Path
    prod_ids: set[str]
    dev_ids: set[str]
    stop: Any = field(repr=False)


def _creates(seed: int) -> list[dict[str, Any]]:
    events = [json.loads(e) for e in generate_events(300, seed=seed, end=datetime.now(UTC))]
    creates = [e for e in events if e.get("verb") == "create"]
    assert creates
    return creates


def _post(url: str, token: str, events: list[dict[str, Any]]) -> None:
    answer = httpx.post(
        url + PATH,
        json=event_list(events),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def _alerts(url: str, **params: Any) -> list[dict[str, Any]]:
    answer = httpx.get(url + "/api/alerts", params={"limit": 1000, **params}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["alerts"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("alerts-apart")
    main, prod = tmp / "main.duckdb", tmp / "prod.duckdb"
    config = ServerConfig(
        db=str(main),
        clusters=[
            ClusterConfig(
                name="dev", environment="development", token_sha256=[hash_token(DEV_TOKEN)]
            ),
            ClusterConfig(
                name="prod",
                environment="production",
                store=str(prod),
                token_sha256=[hash_token(PROD_TOKEN)],
            ),
        ],
        admin_token_sha256=[hash_token(ADMIN_TOKEN)],
    )
    (tmp / "kubetrail.yaml").write_text(CONFIG.format(db=main, prod=prod))
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "create.yaml").write_text(RULES)
    detect = DetectConfig(
        builtin=False,
        rule_dirs=[str(rules)],
        schedule_seconds=1,
        cooldown_seconds=30 * 86400,  # one alert per cluster and user, whatever the batching
        sinks=[SinkConfig(type="stdout", min_severity="info")],
    )
    sock = free_socket()
    port = sock.getsockname()[1]
    config.listen = f"127.0.0.1:{port}"
    app = create_app(config, detect=detect)
    server = uvicorn.Server(uvicorn_config(app, config, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)

    def stop() -> None:
        if not thread.is_alive():
            return
        server.should_exit = True
        thread.join(30)
        sock.close()
        assert not thread.is_alive(), "server did not stop"

    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.02)
        url = f"http://127.0.0.1:{port}"
        prod_events, dev_events = _creates(21), _creates(22)
        _post(url, PROD_TOKEN, prod_events)
        _post(url, DEV_TOKEN, dev_events)
        prod_users = {e["user"]["username"] for e in prod_events}
        dev_users = {e["user"]["username"] for e in dev_events}

        def raised() -> bool:
            found = _alerts(url)
            return {a["key"] for a in found if a["cluster"] == "prod"} == prod_users and {
                a["key"] for a in found if a["cluster"] == "dev"
            } == dev_users

        wait_for(raised)
        every = _alerts(url)
        yield Server(
            url,
            main,
            prod,
            tmp / "kubetrail.yaml",
            {a["id"] for a in every if a["cluster"] == "prod"},
            {a["id"] for a in every if a["cluster"] == "dev"},
            stop,
        )
    finally:
        stop()


def test_api_lists_every_store_and_follows_the_scope(server: Server) -> None:
    every = _alerts(server.url)
    assert {a["id"] for a in every} == server.prod_ids | server.dev_ids
    seen = [a["last_seen"] for a in every]
    assert seen == sorted(seen, reverse=True)  # merged by time across the two files
    assert {a["id"] for a in _alerts(server.url, cluster="prod")} == server.prod_ids
    assert {a["id"] for a in _alerts(server.url, cluster="dev")} == server.dev_ids
    assert {a["id"] for a in _alerts(server.url, environment="production")} == server.prod_ids
    assert {a["id"] for a in _alerts(server.url, cluster="env:development")} == server.dev_ids
    assert len(_alerts(server.url, limit=1)) == 1
    assert_error(httpx.get(server.url + "/api/alerts?environment=nowhere", headers=ADMIN), 400)
    page = httpx.get(server.url + "/ui/alerts", params={"cluster": "env:production"}, headers=ADMIN)
    assert page.status_code == 200
    assert all(i in page.text for i in server.prod_ids)
    assert not any(i in page.text for i in server.dev_ids)
    assert _overview_clusters(server) >= {every[0]["cluster"]}
    assert _overview_clusters(server, cluster="prod") == {"prod"}
    assert _overview_clusters(server, cluster="env:development") == {"dev"}


def _overview_clusters(server: Server, **params: str) -> set[str]:
    """The clusters of the overview's latest alerts."""
    page = httpx.get(server.url + "/ui/overview", params={"range": "all", **params}, headers=ADMIN)
    assert page.status_code == 200, page.text
    panel = page.text.split('id="panel-alerts"')[1].split("</section>")[0]
    return {c for c in ("prod", "dev") if f"<td>{c}</td>" in panel}


def test_a_production_alert_is_read_and_acknowledged_by_id(server: Server) -> None:
    alert_id = sorted(server.prod_ids)[0]
    got = httpx.get(f"{server.url}/api/alerts/{alert_id}", headers=ADMIN)
    assert got.status_code == 200 and got.json()["cluster"] == "prod"
    url = f"{server.url}/api/alerts/{alert_id}"
    wait_for(lambda: bool(httpx.get(url, headers=ADMIN).json()["deliveries"]))
    acked = httpx.post(
        f"{server.url}/api/alerts/{alert_id}/status",
        json={"status": "acknowledged"},
        headers=ADMIN,
    )
    assert acked.status_code == 200, acked.text
    assert acked.json()["status"] == "acknowledged" and acked.json()["acknowledged_by"]
    again = httpx.get(f"{server.url}/api/alerts/{alert_id}", headers=ADMIN).json()
    assert again["status"] == "acknowledged"
    missing = httpx.post(
        f"{server.url}/api/alerts/no-such-alert/status", json={"status": "resolved"}, headers=ADMIN
    )
    assert_error(missing, 404)


def test_after_the_server_stops_the_files_hold_their_own_alerts(server: Server) -> None:
    server.stop()
    with open_store(server.main, read_only=True) as main:
        rows = main.query("SELECT id, cluster, message, audit_ids FROM alerts").to_pylist()
        assert {r["id"] for r in rows} == server.dev_ids
        assert {r["cluster"] for r in rows} == {"dev"}
        deliveries = main.query("SELECT alert_id FROM alert_deliveries").to_pylist()
        assert {d["alert_id"] for d in deliveries} <= server.dev_ids
    with open_store(server.prod, read_only=True) as prod:
        rows = prod.query("SELECT id, cluster, status FROM alerts").to_pylist()
        assert {r["id"] for r in rows} == server.prod_ids
        assert "acknowledged" in {r["status"] for r in rows}
        deliveries = prod.query("SELECT alert_id, state FROM alert_deliveries").to_pylist()
        assert {d["alert_id"] for d in deliveries} == server.prod_ids
        assert {d["state"] for d in deliveries} == {"delivered"}


def _cli(server: Server, *args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [*KUBETRAIL, "alerts", "--config", str(server.config), "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_the_cli_reads_every_file_of_the_config(server: Server) -> None:
    server.stop()  # the CLI opens the files the server held
    every = _cli(server)
    assert {a["id"] for a in every} == server.prod_ids | server.dev_ids
    assert {a["id"] for a in _cli(server, "--cluster", "prod")} == server.prod_ids
    assert {a["id"] for a in _cli(server, "--environment", "development")} == server.dev_ids
    alone = subprocess.run(
        [*KUBETRAIL, "alerts", "--db", str(server.main), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert alone.returncode == 0, alone.stderr
    assert {json.loads(x)["id"] for x in alone.stdout.splitlines()} == server.dev_ids
