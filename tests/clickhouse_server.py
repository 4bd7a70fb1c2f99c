"""A real ClickHouse 26 server for tests, from the PyPI package ``chdb-core`` alone.

How it works (see /work/shared/clickhouse-in-tests.md for the measurements behind each point):
``chdb._chdb.query(sql, fmt, path=DATA)`` runs the clickhouse-local server object once per
process. Inside that call, ``SYSTEM START LISTEN HTTP/TCP`` opens the interfaces configured in
``config.xml`` of the *current directory*, and they serve as long as the call keeps running, so
the call ends with a statement that sleeps row by row over a huge ``numbers()`` range. Cancelling
that statement (``KILL QUERY`` over HTTP) shuts the server down cleanly; SIGKILL of the PID is
the fallback. The server runs in a subprocess of its own (the call blocks and can run once).

``chdb`` is a test dependency only (``pytest.importorskip`` in the fixtures).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

#: Marks the keep-alive statement, so that KILL QUERY finds exactly it.
_MARKER = "kubetrail_test_server_keepalive"

# The child: signals are handled in the main thread, the blocking call runs in another one.
_CHILD = f"""
import os, signal, sys, threading, time
import chdb._chdb as engine
data, parent = sys.argv[1], os.getppid()
def orphaned():  # the test process died without stopping us: stop anyway
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)
threading.Thread(target=orphaned, daemon=True).start()
def serve():
    try:
        engine.query(
            "SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; "
            "SELECT sleepEachRow(1) AS {_MARKER} FROM numbers(1000000000) "
            "SETTINGS max_block_size = 1, function_sleep_max_microseconds_per_block = 0 "
            "FORMAT Null",
            "TabSeparated",
            path=data,
        )
    except Exception as exc:  # cancelled by KILL QUERY: that is the normal way out
        print("server call ended:", exc, file=sys.stderr)
thread = threading.Thread(target=serve, daemon=True)
thread.start()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
thread.join()
"""

_CONFIG = """<clickhouse>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <keep_alive_timeout>2</keep_alive_timeout>
    <logger><level>warning</level><console>0</console></logger>
{extra}</clickhouse>
"""

_USERS = """<clickhouse>
    <profiles>
        <default><poll_interval>1</poll_interval></default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
            <access_management>0</access_management>
        </default>
    </users>
    <quotas><default></default></quotas>
</clickhouse>
"""


def free_port() -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ClickHouseServer:
    """One ClickHouse server process on 127.0.0.1.

    Args:
        workdir: a directory of its own: config, users and data go there.
        extra_config: XML inserted into ``config.xml`` (e.g. ``<remote_servers>``).
    """

    workdir: Path
    extra_config: str = ""
    http_port: int = field(default_factory=free_port)
    tcp_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The HTTP URL clickhouse-connect talks to."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 30.0) -> ClickHouseServer:
        """Start the server and wait until it answers ``SELECT 1``.

        Raises:
            RuntimeError: it did not come up within ``timeout`` seconds.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        (self.workdir / "config.xml").write_text(
            _CONFIG.format(
                http_port=self.http_port, tcp_port=self.tcp_port, extra=self.extra_config
            )
        )
        (self.workdir / "users.xml").write_text(_USERS)
        with (self.workdir / "server.log").open("wb") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(self.workdir / "data")],
                cwd=self.workdir,  # config.xml is read from the working directory
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TZ": "UTC"},
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ClickHouse exited: {self._log_tail()}")
            if self._ping():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"ClickHouse did not start in {timeout}s: {self._log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop it: KILL QUERY of the keep-alive statement, then SIGKILL of the PID if needed."""
        process, self.process = self.process, None
        atexit.unregister(self.stop)
        if process is None or process.poll() is not None:
            return
        kill = f"KILL QUERY WHERE query LIKE '%{_MARKER}%' AND query NOT LIKE '%KILL%' SYNC"
        with contextlib.suppress(OSError, urllib.error.URLError):  # already going away
            self._http(kill, timeout=5)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)

    def _ping(self) -> bool:
        try:
            return self._http("SELECT 1", timeout=1).strip() == "1"
        except (OSError, urllib.error.URLError):
            return False

    def _http(self, sql: str, timeout: float) -> str:
        request = urllib.request.Request(self.url + "/", data=sql.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return str(response.read().decode())

    def _log_tail(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def __enter__(self) -> ClickHouseServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
