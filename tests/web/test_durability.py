"""kill -9 of a serving process while clients stream batches, then restart; SIGTERM drain."""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from live import PROD_TOKEN, free_port

from kubetrail.demo import generate_events
from kubetrail.store import open_store
from kubetrail.web.spool import spool_dir

PATH = "/ingest/v1/events"
AUTH = {"Authorization": f"Bearer {PROD_TOKEN}"}
BATCHES = 40
BATCH_EVENTS = 200


def batches() -> list[bytes]:
    lines = list(generate_events(BATCHES * BATCH_EVENTS, seed=21, end=datetime(2026, 1, 1)))
    out = []
    for i in range(BATCHES):
        items = b",".join(lines[i * BATCH_EVENTS : (i + 1) * BATCH_EVENTS])
        out.append(b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[' + items + b"]}")
    return out


def keys(body: bytes) -> set[tuple[str, str]]:
    return {(e["auditID"], e["stage"]) for e in json.loads(body)["items"]}


def stored_keys(db: Path) -> tuple[int, set[tuple[str, str]]]:
    with open_store(db, read_only=True) as store:
        table = store.query("SELECT audit_id, stage FROM events WHERE cluster = 'prod'")
    rows = list(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))
    return len(rows), set(rows)


def stream(url: str, bodies: list[bytes], acked: dict[int, int], stop: threading.Event) -> None:
    """Send the bodies in turn (two senders share the list), recording the 200s."""
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            with threading.Lock():
                pending = [i for i in range(len(bodies)) if i not in acked]
            if not pending:
                return
            i = pending[0]
            acked[i] = -1  # claimed
            try:
                r = client.post(url + PATH, content=bodies[i], headers=AUTH)
                acked[i] = r.status_code
            except httpx.TransportError:
                acked[i] = 0
                return


def test_kill_9_while_streaming_then_restart(serve_process: Any, tmp_path: Path) -> None:
    db = tmp_path / "kill.duckdb"
    port = free_port()
    args = ["--db", str(db), "--cluster-token", f"prod={PROD_TOKEN}", "--no-demo"]
    bodies = batches()
    acked: dict[int, int] = {}
    stop = threading.Event()
    server = serve_process(args, port).start()
    senders = [
        threading.Thread(target=stream, args=(server.url, bodies, acked, stop)) for _ in "ab"
    ]
    for t in senders:
        t.start()
    deadline = time.monotonic() + 30
    while sum(1 for s in acked.values() if s == 200) < 8 and time.monotonic() < deadline:
        time.sleep(0.005)
    server.kill(signal.SIGKILL)
    stop.set()
    for t in senders:
        t.join(20)
    ok = [i for i, s in acked.items() if s == 200]
    assert 8 <= len(ok) < BATCHES, acked

    # A batch that got 200 may still be only in the spool: the restart commits it.
    server = serve_process(args, port).start()
    assert not any(spool_dir(db).glob("*.spool")), "the replayed spool is emptied"
    assert server.kill(signal.SIGTERM) == 0

    # Every batch that got 200 survived the kill, and nothing is stored twice.
    rows, stored = stored_keys(db)
    assert rows == len(stored)
    for i in ok:
        assert keys(bodies[i]) <= stored

    # The senders retry everything not acknowledged, some of it already stored.
    server = serve_process(args, port).start()
    with httpx.Client(timeout=30) as client:
        for i, body in enumerate(bodies):
            if acked.get(i) != 200:
                assert client.post(server.url + PATH, content=body, headers=AUTH).status_code == 200
    assert server.kill(signal.SIGTERM) == 0
    rows, stored = stored_keys(db)
    assert rows == len(stored) == len(set().union(*(keys(b) for b in bodies)))


def test_sigterm_drains_acknowledged_batches(serve_process: Any, tmp_path: Path) -> None:
    db = tmp_path / "drain.duckdb"
    args = ["--db", str(db), "--cluster-token", f"prod={PROD_TOKEN}", "--no-demo"]
    server = serve_process(args, free_port()).start()
    bodies = batches()[:6]
    results = [0] * len(bodies)

    def send(i: int) -> None:
        try:
            r = httpx.post(server.url + PATH, content=bodies[i], headers=AUTH, timeout=30)
            results[i] = r.status_code
        except httpx.TransportError:
            results[i] = -1

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until a batch is admitted and not yet answered
        if httpx.get(server.url + "/readyz").json().get("pending_batches", 0) >= 1:
            break
        time.sleep(0.002)
    assert server.kill(signal.SIGTERM) == 0
    for t in threads:
        t.join(30)
    assert not list(spool_dir(db).glob("*.spool")), "SIGTERM commits the whole spool"
    rows, stored = stored_keys(db)
    acknowledged = [b for b, s in zip(bodies, results, strict=True) if s == 200]
    assert rows == len(stored)
    assert acknowledged, results
    for body in acknowledged:
        assert keys(body) <= stored
