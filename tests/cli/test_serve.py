"""``kubetrail serve``, ``collect`` and ``certs`` as commands: flags, first start, demo data."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from kubetrail.cli.certs import certs
from kubetrail.cli.collect import collect
from kubetrail.cli.serve import serve
from kubetrail.store import open_store
from kubetrail.web.auth import hash_token


def test_flag_errors() -> None:
    runner = CliRunner()
    result = runner.invoke(serve, ["--cluster-token", "prod"])
    assert result.exit_code == 2 and "NAME=TOKEN" in result.output
    result = runner.invoke(serve, ["--listen", "nowhere"])
    assert result.exit_code == 1 and "--listen" in result.output
    result = runner.invoke(serve, ["--cluster-token", "Bad Name=x"])
    assert result.exit_code == 1 and "not a valid cluster name" in result.output
    result = runner.invoke(collect, ["--file", "x.log"])
    assert result.exit_code == 1 and "--server URL or --db PATH" in result.output
    result = runner.invoke(collect, ["--server", "http://x"])
    assert result.exit_code == 1 and "--token" in result.output


def test_certs_dev_and_token_hash(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(certs, ["dev", "--out", str(tmp_path), "--cluster", "kind"])
    assert result.exit_code == 0, result.output
    for name in ("ca", "server", "client"):
        assert (tmp_path / f"{name}.pem").read_text().startswith("-----BEGIN CERTIFICATE")
        assert (tmp_path / f"{name}-key.pem").stat().st_mode & 0o077 == 0
    result = runner.invoke(certs, ["hash-token", "abc"])
    assert result.output.strip() == hash_token("abc")
    result = runner.invoke(certs, ["new-token"])
    token = result.output.split()[1]
    assert hash_token(token) in result.output


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_serve(args: list[str], log: Path, url: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kubetrail", "serve", *args], stdout=out, stderr=out
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(log.read_text())


def test_demo_first_start_and_restart(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    port = _port()
    url = f"http://127.0.0.1:{port}"
    args = ["--db", str(db), "--listen", f"127.0.0.1:{port}", "--demo", "--demo-events", "3000"]
    proc = _run_serve(args, tmp_path / "first.log", url)
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill() if proc.poll() is None else None
    out = (tmp_path / "first.log").read_text()
    assert f"kubetrail serving on {url}/" in out
    assert "loaded 3,000 demo events" in out
    token = out.split("admin token", 1)[1].splitlines()[1].strip()
    stored = json.loads((tmp_path / "demo.duckdb.auth.json").read_text())
    assert stored == {"version": 1, "admin_token_sha256": [hash_token(token)]}

    proc = _run_serve(args, tmp_path / "second.log", url)
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill() if proc.poll() is None else None
    out = (tmp_path / "second.log").read_text()
    assert "admin token" not in out and "demo events" not in out
    with open_store(db, read_only=True) as store:
        assert store.count("demo") == 3000
