"""A server whose clusters write to files of their own (issue 9): reads follow the selected
cluster or environment, "all clusters" names what it leaves out, detections see every file,
and alerts carry and filter by their environment."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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

from kubetrail.config import ClusterConfig, DetectConfig, ServerConfig
from kubetrail.demo import generate_events
from kubetrail.pipeline import ingest_paths
from kubetrail.store import open_store
from kubetrail.web.app import create_app
from kubetrail.web.auth import hash_token
from kubetrail.web.server import uvicorn_config

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
RULES = """
rules:
  - id: test.prod_create
    title: A create in production
    description: stateless, by environment
    severity: high
    when: 'environment=production verb=create'
    key: [user]
    output: '{user} created {resource} in {cluster}'
  - id: test.staging_activity
    title: Activity in staging
    description: a threshold rule over clusters stored in files of their own
    severity: low
    when: 'environment in (staging) verb=get'
    threshold: {count: 1, window: 7d, by: [verb]}
    output: '{count} gets in {cluster}'
"""


@dataclass
class Server:
    url: str
    tmp: Path
    prod_event: str


def _fill(path: Path, cluster: str, seed: int, tmp: Path) -> str:
    source = tmp / f"{cluster}.jsonl"
    lines = list(generate_events(400, seed=seed, end=datetime.now(UTC), span=timedelta(hours=2)))
    source.write_bytes(b"\n".join(lines) + b"\n")
    with open_store(path) as store:
        ingest_paths(store, [str(source)], cluster)
    return str(json.loads(lines[-1])["auditID"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("apart")
    prod, stg_a, stg_b = tmp / "prod.duckdb", tmp / "stg-a.duckdb", tmp / "stg-b.duckdb"
    _fill(tmp / "main.duckdb", "dev", 1, tmp)
    prod_event = _fill(prod, "prod-eu", 2, tmp)
    _fill(prod, "prod-us", 3, tmp)
    _fill(stg_a, "stg-a", 4, tmp)
    _fill(stg_b, "stg-b", 5, tmp)
    config = ServerConfig(
        db=str(tmp / "main.duckdb"),
        clusters=[
            ClusterConfig(name="dev", environment="development"),
            ClusterConfig(
                name="prod-eu",
                environment="production",
                store=str(prod),
                token_sha256=[hash_token(PROD_TOKEN)],
            ),
            ClusterConfig(name="prod-us", environment="production", store=str(prod)),
            ClusterConfig(name="stg-a", environment="staging", store=str(stg_a)),
            ClusterConfig(name="stg-b", environment="staging", store=str(stg_b)),
        ],
        admin_token_sha256=[hash_token(ADMIN_TOKEN)],
    )
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "env.yaml").write_text(RULES)
    detect = DetectConfig(builtin=False, rule_dirs=[str(rules)], schedule_seconds=1)
    sock = free_socket()
    port = sock.getsockname()[1]
    config.listen = f"127.0.0.1:{port}"
    app = create_app(config, detect=detect)
    server = uvicorn.Server(uvicorn_config(app, config, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.02)
        yield Server(f"http://127.0.0.1:{port}", tmp, prod_event)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def _get(server: Server, path: str, **params: Any) -> httpx.Response:
    return httpx.get(server.url + path, params=params, headers=ADMIN, timeout=30)


def _by_cluster(server: Server, **params: Any) -> dict[str, int]:
    answer = _get(server, "/api/query", q="| stats count() by cluster", **params)
    assert answer.status_code == 200, answer.text
    return {c: n for c, n in answer.json()["rows"]}


def test_one_cluster_and_one_environment_read_their_file(server: Server) -> None:
    assert set(_by_cluster(server, cluster="prod-eu")) == {"prod-eu"}
    assert set(_by_cluster(server, environment="production")) == {"prod-eu", "prod-us"}
    assert set(_by_cluster(server, cluster="env:production")) == {"prod-eu", "prod-us"}
    assert set(_by_cluster(server, cluster="stg-b")) == {"stg-b"}
    overview = _get(server, "/api/overview", environment="production", range="all").json()
    assert overview["panels"]["users"]["rows"] and "not_included" not in overview
    event = _get(server, f"/api/events/{server.prod_event}")  # found in prod's own file
    assert event.status_code == 200 and event.json()["cluster"] == "prod-eu"


def test_an_environment_over_several_files_is_refused_with_the_way_out(server: Server) -> None:
    body = assert_error(_get(server, "/api/query", q="verb=get", environment="staging"), 400)
    assert "stored in 2 files" in body["error"] and "cluster=NAME" in body["error"]
    assert "stg-a" in body["error"] and "stg-b" in body["error"]


def test_all_clusters_names_the_clusters_it_leaves_out(server: Server) -> None:
    answer = _get(server, "/api/query", q="| stats count() by cluster")
    assert {c for c, _ in answer.json()["rows"]} == {"dev"}
    apart = {a["cluster"]: a for a in answer.json()["not_included"]}
    assert set(apart) == {"prod-eu", "prod-us", "stg-a", "stg-b"}
    assert apart["prod-eu"]["select"] == "cluster=prod-eu or environment=production"
    assert apart["prod-eu"]["store"].endswith("prod.duckdb")
    export = _get(server, "/api/query", q="verb=get", format="csv")
    assert export.headers["X-Kubetrail-Not-Included"] == "prod-eu,prod-us,stg-a,stg-b"
    overview = _get(server, "/api/overview", range="all").json()
    assert len(overview["not_included"]) == 4
    page = _get(server, "/ui/overview", range="all")
    assert page.status_code == 200 and 'id="not-included"' in page.text
    assert '<a href="?cluster=env:staging">' in page.text
    assert 'id="not-included"' not in _get(server, "/ui/overview", cluster="prod-us").text
    refused = _get(server, "/ui/search", q="verb=get", cluster="env:staging")
    assert refused.status_code == 400 and "stored in 2 files" in refused.text


def test_detections_see_every_file_and_alerts_carry_the_environment(server: Server) -> None:
    events = [json.loads(e) for e in generate_events(200, seed=9, end=datetime.now(UTC))]
    creates = [e for e in events if e.get("verb") == "create"]
    assert creates
    answer = httpx.post(
        server.url + PATH,
        json=event_list(creates),
        headers={"Authorization": f"Bearer {PROD_TOKEN}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text

    def alerts(**params: Any) -> list[dict[str, Any]]:
        return list(_get(server, "/api/alerts", limit=1000, **params).json()["alerts"])

    wait_for(lambda: {a["cluster"] for a in alerts(environment="staging")} == {"stg-a", "stg-b"})
    wait_for(lambda: any(a["rule"] == "test.prod_create" for a in alerts()))
    prod = alerts(environment="production")
    assert prod and {a["environment"] for a in prod} == {"production"}
    assert {a["cluster"] for a in prod} == {"prod-eu"}
    staged = alerts(cluster="env:staging")
    assert {a["environment"] for a in staged} == {"staging"}
    assert all(a["rule"] == "test.staging_activity" for a in staged)
    assert alerts(environment="development") == []
    page = _get(server, "/ui/alerts", cluster="env:production")
    assert page.status_code == 200 and "test.prod_create" in page.text
    assert "test.staging_activity" not in page.text
    assert_error(_get(server, "/api/alerts", environment="nowhere"), 400)
