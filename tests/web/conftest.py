"""A live kubetrail server on loopback: uvicorn in a thread, or ``kubetrail serve`` in a process.

Every server started here is stopped by its fixture, even when the test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from live import STARTUP_SECONDS, base_config

from kubetrail.certs import DevCerts, write_dev_certs
from kubetrail.config import ServerConfig
from kubetrail.store import open_store
from kubetrail.web.app import create_app
from kubetrail.web.server import uvicorn_config


@dataclass
class Live:
    url: str
    config: ServerConfig
    server: uvicorn.Server
    thread: threading.Thread
    stopped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        if not self.stopped:
            self.server.should_exit = True
            self.thread.join(30)
            self.stopped = True

    def count(self, cluster: str | None = None) -> int:
        """Stored events, read after the server stopped (it owns the store while running)."""
        self.stop()
        with open_store(self.config.db, read_only=True) as store:
            return store.count(cluster)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    started: list[Live] = []

    def start(
        config: ServerConfig | None = None, store: Any = None, port: int = 0, **overrides: Any
    ) -> Live:
        config = config or base_config(tmp_path / "audit.duckdb")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        port = sock.getsockname()[1]
        config.listen = f"127.0.0.1:{port}"
        app = create_app(config, store=store)
        server = uvicorn.Server(
            uvicorn_config(app, config, **{"log_level": "warning", **overrides})
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        live = Live(
            url=f"{'https' if config.tls.cert else 'http'}://127.0.0.1:{port}",
            config=config,
            server=server,
            thread=thread,
        )
        started.append(live)
        deadline = time.monotonic() + STARTUP_SECONDS
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.02)
        live.extra["socket"] = sock  # closed at teardown: uvicorn listens on this very socket
        return live

    try:
        yield start
    finally:
        for live in started:
            live.stop()
            live.extra["socket"].close()


@pytest.fixture(scope="session")
def dev_certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("certs"), cluster="dev")


@dataclass
class ServeProcess:
    """``kubetrail serve`` as a child process."""

    args: list[str]
    url: str
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self) -> ServeProcess:
        assert self.log is not None
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kubetrail", "serve", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("kubetrail serve did not become ready:\n" + self.log.read_text())

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Any]:
    procs: list[ServeProcess] = []

    def make(args: list[str], port: int) -> ServeProcess:
        proc = ServeProcess(
            [*args, "--listen", f"127.0.0.1:{port}"],
            f"http://127.0.0.1:{port}",
            log=tmp_path / "serve.log",
        )
        procs.append(proc)
        return proc

    try:
        yield make
    finally:
        for proc in procs:
            if proc.process is not None and proc.process.poll() is None:
                proc.kill()
