"""The product used unchanged on ClickHouse: ``serve`` configured with a ``store:`` section, and
``ingest``/``query``/``report``/``stats``/``export``/``policy simulate`` given a store URL.

Everything runs on the real ClickHouse server of the session (``tests/clickhouse_server.py``);
the answers are compared with the embedded store's on the same events.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from click.testing import CliRunner

from kubetrail.cli import main
from kubetrail.pipeline import ingest_paths
from kubetrail.store import open_store
from kubetrail.web.auth import hash_token

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")

DATA = Path(__file__).parents[1] / "data"
EVENTS = DATA / "events" / "audit2rbac-demo-v1beta1-original.jsonl"
TOKEN = "clickhouse-prod-token-0123456789"


def _location(clickhouse_url: str, database: str) -> str:
    parts = urlsplit(clickhouse_url)
    return f"clickhouse://{parts.hostname}:{parts.port}/{database}"


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def location(clickhouse_url: str) -> Iterator[str]:
    database = f"kt_{uuid.uuid4().hex[:10]}"
    yield _location(clickhouse_url, database)
    from kubetrail.store.clickhouse import ClickHouseStore

    with ClickHouseStore(clickhouse_url, database="default") as admin:
        admin._client.command(f"DROP DATABASE IF EXISTS {database}")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("embedded") / "same.duckdb"
    with open_store(path) as store:
        ingest_paths(store, [str(EVENTS)], "prod")
    return str(path)


def test_cli_commands_take_a_clickhouse_url(location: str, embedded: str) -> None:
    summary = json.loads(
        _cli("ingest", str(EVENTS), "--cluster", "prod", "--db", location, "--format", "json")
    )
    assert summary["stored"] > 0 and summary["rejected"] == 0
    again = json.loads(
        _cli("ingest", str(EVENTS), "--cluster", "prod", "--db", location, "--format", "json")
    )
    assert again["stored"] == 0 and again["duplicates"] == summary["stored"]

    query = "verb in (get, list) | stats count() by verb, resource | sort -count, verb, resource"
    ours = json.loads(_cli("query", query, "--db", location, "--format", "json"))
    theirs = json.loads(_cli("query", query, "--db", embedded, "--format", "json"))
    assert ours["rows"] == theirs["rows"] and ours["rows"]

    stats = json.loads(_cli("stats", "--db", location, "--format", "json"))
    assert stats == json.loads(_cli("stats", "--db", embedded, "--format", "json"))
    assert json.loads(_cli("report", "--db", location, "--format", "json")) == json.loads(
        _cli("report", "--db", embedded, "--format", "json")
    )
    exported = sorted(_cli("export", "--db", location).splitlines())
    assert exported == sorted(_cli("export", "--db", embedded).splitlines())

    policy = str(DATA / "policies" / sorted(p.name for p in (DATA / "policies").glob("*.yaml"))[0])
    simulated = _cli("policy", "simulate", policy, "--db", location, "--format", "json")
    assert json.loads(simulated) == json.loads(
        _cli("policy", "simulate", policy, "--db", embedded, "--format", "json")
    )


def test_a_bad_url_is_a_clear_error() -> None:
    result = CliRunner().invoke(main, ["query", "verb=get", "--db", "clickhouse://"])
    assert result.exit_code != 0
    assert "ClickHouse URL" in result.output or "bad store" in result.output


def test_serve_writes_to_the_configured_clickhouse(
    tmp_path: Path, clickhouse_url: str, location: str, embedded: str
) -> None:
    port = _free_port()
    database = location.rsplit("/", 1)[1]
    config = {
        "server": {
            "listen": f"127.0.0.1:{port}",
            "db": str(tmp_path / "side"),
            "clusters": [{"name": "prod", "token_sha256": [hash_token(TOKEN)]}],
        },
        "store": {"engine": "clickhouse", "url": clickhouse_url, "database": database},
    }
    config_file = tmp_path / "kubetrail.yaml"
    config_file.write_text(yaml.safe_dump(config))
    log = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kubetrail", "serve", "--config", str(config_file)],
            stdout=out,
            stderr=out,
            cwd=tmp_path,  # a ClickHouse store's side files (auth, quarantine) go to the cwd
        )
    try:
        _wait_ready(proc, url, log)
        items = [json.loads(line) for line in EVENTS.read_text().splitlines() if line.strip()]
        body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        answer = httpx.post(url + "/ingest/v1/events", json=body, headers=headers, timeout=60)
        assert answer.status_code == 200, answer.text
        retried = httpx.post(url + "/ingest/v1/events", json=body, headers=headers, timeout=60)
        assert retried.status_code == 200, retried.text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(30) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    shown = log.read_text()
    assert f"(store: {clickhouse_url})" in shown
    assert (tmp_path / "side.auth.json").exists()
    # The retried POST stored nothing twice: the same answers as the embedded store.
    query = "stage=* | stats count() by cluster, stage | sort cluster, stage"
    ours = json.loads(_cli("query", query, "--db", location, "--format", "json"))
    theirs = json.loads(_cli("query", query, "--db", embedded, "--format", "json"))
    assert ours["rows"] == theirs["rows"] and ours["rows"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(log.read_text())


def test_gaps_agree_with_the_embedded_store(clickhouse_url: str, tmp_path: Path) -> None:
    """A cluster that went quiet for two hours: the same gap on both engines."""
    from datetime import UTC, datetime, timedelta

    from kubetrail.demo import generate_events
    from kubetrail.store.clickhouse import ClickHouseStore
    from kubetrail.store.gaps import find_gaps

    end = datetime(2026, 1, 1, tzinfo=UTC)
    span = timedelta(minutes=30)
    lines = [*generate_events(400, seed=3, end=end - timedelta(hours=3), span=span),
             *generate_events(400, seed=4, end=end, span=span)]  # fmt: skip
    events = tmp_path / "quiet.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    database = f"kt_{uuid.uuid4().hex[:10]}"
    with ClickHouseStore(clickhouse_url, database=database) as ch, open_store(":memory:") as duck:
        ingest_paths(ch, [str(events)], "prod")
        ingest_paths(duck, [str(events)], "prod")
        now = end.replace(tzinfo=None) + timedelta(hours=1)
        ours, theirs = find_gaps(ch, now=now), find_gaps(duck, now=now)
        assert ours == theirs
        assert any(g.seconds > 3600 and g.end < now for g in ours)
        assert any(g.end == now for g in ours)
        ch._client.command(f"DROP DATABASE IF EXISTS {database}")
