"""``kubetrail collect`` as a process: to a live server, across rotation, outages and kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from live import PROD_TOKEN, base_config, cluster_metric, free_port, wait_for

from kubetrail.config import TLSConfig
from kubetrail.demo import generate_events
from kubetrail.store import open_store


class Lines:
    def __init__(self, path: Path, n: int = 4000) -> None:
        self.path = path
        self._it = iter(list(generate_events(n, seed=9, end=datetime(2026, 1, 1))))
        self.count = 0
        self.rotations = 0

    def write(self, n: int) -> None:
        with open(self.path, "ab") as handle:
            handle.write(b"".join(next(self._it) + b"\n" for _ in range(n)))
        self.count += n

    def rotate(self) -> None:
        self.rotations += 1
        os.rename(
            self.path, self.path.with_name(f"audit-2026-01-01T00-00-{self.rotations:02d}.000.log")
        )
        self.path.touch()


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        log = open(tmp_path / "collect.log", "ab")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [sys.executable, "-m", "kubetrail", "collect", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


STORED = "kubetrail_ingest_events_stored_total"


def test_collect_to_server_across_rotation(
    start_server: Any, collector: Any, tmp_path: Path
) -> None:
    live = start_server()
    lines = Lines(tmp_path / "audit.log")
    lines.write(300)
    proc = collector(
        "--file",
        str(lines.path),
        "--server",
        live.url,
        "--token",
        PROD_TOKEN,
        "--checkpoint",
        str(tmp_path / "ckpt.json"),
        "--poll",
        "0.05",
    )
    wait_for(lambda: cluster_metric(live.url, STORED) >= 300)
    lines.write(150)
    lines.rotate()
    lines.write(70)
    wait_for(lambda: cluster_metric(live.url, STORED) >= 520)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert live.count("prod") == 520


def test_unreachable_server_then_recovery(
    start_server: Any, collector: Any, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "kubetrail.yaml"
    config.write_text("collect:\n  max_backoff_seconds: 0.3\n  poll_seconds: 0.05\n")
    lines = Lines(tmp_path / "audit.log")
    lines.write(250)
    proc = collector(
        "--config",
        str(config),
        "--file",
        str(lines.path),
        "--server",
        f"http://127.0.0.1:{port}",
        "--token",
        PROD_TOKEN,
        "--checkpoint",
        str(tmp_path / "ckpt.json"),
    )
    time.sleep(1.0)  # several failed attempts with backoff
    assert proc.poll() is None
    assert not (tmp_path / "ckpt.json").exists()  # position kept: nothing acknowledged
    live = start_server(port=port)
    lines.write(50)
    wait_for(lambda: cluster_metric(live.url, STORED) >= 300)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert live.count("prod") == 300


def test_kill_9_of_the_collector_then_resume(collector: Any, tmp_path: Path) -> None:
    db = tmp_path / "collect.duckdb"
    ckpt = tmp_path / "ckpt.json"
    lines = Lines(tmp_path / "audit.log")
    lines.write(1500)
    args = [
        "--file",
        str(lines.path),
        "--db",
        str(db),
        "--cluster",
        "prod",
        "--checkpoint",
        str(ckpt),
        "--poll",
        "0.05",
    ]
    proc = collector(*args)
    wait_for(ckpt.exists)
    lines.write(500)
    lines.rotate()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    lines.write(300)
    again = collector(*args, "--once")
    assert again.wait(60) == 0
    with open_store(db, read_only=True) as store:
        table = store.query("SELECT count(*), count(DISTINCT (audit_id, stage)) FROM events")
    total, distinct = table.column(0)[0].as_py(), table.column(1)[0].as_py()
    assert total == distinct == lines.count == 2300


def test_collect_with_client_certificate_over_tls(
    start_server: Any, collector: Any, tmp_path: Path, dev_certs: Any
) -> None:
    config = base_config(tmp_path / "tls.duckdb")
    config.tls = TLSConfig(str(dev_certs.server), str(dev_certs.server_key), str(dev_certs.ca))
    live = start_server(config)
    lines = Lines(tmp_path / "audit.log")
    lines.write(120)
    proc = collector(
        "--file",
        str(lines.path),
        "--server",
        live.url,
        "--once",
        "--cert",
        str(dev_certs.client),
        "--key",
        str(dev_certs.client_key),
        "--ca",
        str(dev_certs.ca),
        "--checkpoint",
        str(tmp_path / "ckpt.json"),
    )
    assert proc.wait(60) == 0
    assert live.count("dev") == 120


def test_refused_credential_stops_the_collector(
    start_server: Any, collector: Any, tmp_path: Path
) -> None:
    live = start_server()
    lines = Lines(tmp_path / "audit.log")
    lines.write(10)
    proc = collector(
        "--file",
        str(lines.path),
        "--server",
        live.url,
        "--token",
        "wrong",
        "--once",
        "--checkpoint",
        str(tmp_path / "ckpt.json"),
    )
    assert proc.wait(60) == 1
    assert "401" in (tmp_path / "collect.log").read_text()
    assert not (tmp_path / "ckpt.json").exists()
