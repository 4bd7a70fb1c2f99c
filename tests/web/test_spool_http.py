"""The webhook's spool over real HTTP: 200 once spooled, duplicates counted at admission,
503 when full, kill -9 with batches only in the spool, replay on restart."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from live import (
    AUTH,
    PATH,
    PROD_TOKEN,
    assert_error,
    base_config,
    demo_events,
    event_list,
    free_port,
)

from kubetrail.store import open_store
from kubetrail.store.duckdb import DuckDBStore
from kubetrail.store.verify import verify_store
from kubetrail.web.spool import read_segment, spool_dir

HERE = Path(__file__).parent


class GatedStore(DuckDBStore):
    """A real store whose commits wait for the test to open the gate."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.commits = 0

    def write_group(self, items: Any) -> Any:
        self.gate.wait(30)
        self.commits += 1
        return super().write_group(items)


def post(live: Any, items: list[Any]) -> httpx.Response:
    return httpx.post(live.url + PATH, json=event_list(items), headers=AUTH, timeout=30)


def spooled_ids(db: Path) -> set[str]:
    return {
        e
        for p in spool_dir(db).glob("*.spool")
        for table, _ in read_segment(p)
        for e in table.column("audit_id").to_pylist()
    }


def test_answer_once_spooled_and_retries_counted_before_the_store_has_them(
    start_server: Any, tmp_path: Path
) -> None:
    db = tmp_path / "gated.duckdb"
    store = GatedStore(db)
    config = base_config(db)
    # Memory keeps 50 recent keys: a retry is found among the pending keys of the spool, then
    # (once committed) by reading the store.
    config.limits.dedupe_keys = 50
    live = start_server(config, store=store)
    items = demo_events(400, seed=5)
    try:
        first = post(live, items)
        assert first.json() == {"accepted": 400, "duplicates": 0, "rejected": []}
        # Answered while the store has not committed anything: the batch is in the spool file.
        assert store.commits == 0
        assert {e["auditID"] for e in items} <= spooled_ids(db)
        # The API server retries it while the first copy is still only in the spool.
        assert post(live, items).json() == {"accepted": 0, "duplicates": 400, "rejected": []}
        # Half old, half new: counted exactly.
        mixed = items[200:] + demo_events(600, seed=6)[400:]
        assert post(live, mixed).json() == {"accepted": 200, "duplicates": 200, "rejected": []}
    finally:
        store.gate.set()
    # Once committed, the retry is found in the store.
    deadline = time.monotonic() + 20
    while store.commits == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert post(live, items).json()["duplicates"] == 400
    assert live.count("prod") == 600


def test_retry_after_restart_and_after_eviction_reads_the_store(
    start_server: Any, tmp_path: Path
) -> None:
    db = tmp_path / "audit.duckdb"
    config = base_config(db)
    config.limits.dedupe_keys = 50  # memory keeps 50 keys: older ones are read from the store
    live = start_server(config)
    a, b = demo_events(400, seed=7), demo_events(400, seed=8)
    assert post(live, a).json()["accepted"] == 400
    assert post(live, b).json()["accepted"] == 400
    assert post(live, a).json() == {"accepted": 0, "duplicates": 400, "rejected": []}
    live.stop()
    # A new process: nothing in memory, the floor is the newest stored event.
    again = start_server(base_config(db))
    assert post(again, b).json() == {"accepted": 0, "duplicates": 400, "rejected": []}
    assert again.count("prod") == 800


def test_full_spool_answers_503_with_retry_after(start_server: Any, tmp_path: Path) -> None:
    db = tmp_path / "full.duckdb"
    store = GatedStore(db)
    config = base_config(db)
    config.limits.max_spool_bytes = 1  # one batch at a time (a lone batch is always taken)
    live = start_server(config, store=store)
    try:
        assert post(live, demo_events(10, seed=1)).status_code == 200
        r = post(live, demo_events(10, seed=2))
        body = assert_error(r, 503)
        assert "max_spool_bytes" in body["error"]
        assert r.headers["Retry-After"] == "1"
        assert "kubetrail_ingest_spool_bytes 0.0" not in httpx.get(live.url + "/metrics").text
        ready = httpx.get(live.url + "/readyz")
        assert ready.status_code == 200 and ready.json()["spool_bytes"] > 0
    finally:
        store.gate.set()
    # The store caught up: the refused batch is taken now.
    deadline = time.monotonic() + 20
    while post(live, demo_events(10, seed=2)).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert live.count("prod") == 20


def start_gated(db: Path, port: int, mode: str, log: Path) -> subprocess.Popen[bytes]:
    """``gated_serve.py`` in a process of its own, once it answers ``/readyz``."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "gated_serve.py"), str(db), str(port), mode],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)


def stored_rows(db: Path) -> list[tuple[str, str]]:
    with open_store(db, read_only=True) as store:
        assert verify_store(store).ok  # the chain covers exactly what is stored
        table = store.query("SELECT audit_id, stage FROM events WHERE cluster = 'prod'")
    return list(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))


def test_sigterm_commits_the_spool_and_exits_0(tmp_path: Path) -> None:
    db = tmp_path / "drain.duckdb"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    slow = start_gated(db, port, "slow", tmp_path / "slow.log")
    try:
        sent = [demo_events(100, seed=s) for s in (41, 42, 43, 44)]
        for items in sent:
            r = httpx.post(url + PATH, json=event_list(items), headers=AUTH, timeout=10)
            assert r.json()["accepted"] == 100
        assert "kubetrail_ingest_spool_bytes 0.0" not in httpx.get(url + "/metrics").text
        slow.send_signal(signal.SIGTERM)
        assert slow.wait(30) == 0
    finally:
        if slow.poll() is None:
            slow.kill()
    assert not list(spool_dir(db).glob("*.spool"))
    rows = stored_rows(db)
    assert len(rows) == len(set(rows)) == 400
    assert set(rows) == {(e["auditID"], e["stage"]) for items in sent for e in items}


def test_kill_9_with_batches_only_in_the_spool_then_replay(
    serve_process: Any, tmp_path: Path
) -> None:
    db = tmp_path / "crash.duckdb"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stuck = start_gated(db, port, "stuck", tmp_path / "stuck.log")
    try:
        sent = [demo_events(200, seed=s) for s in (31, 32, 33)]
        for items in sent:
            r = httpx.post(url + PATH, json=event_list(items), headers=AUTH, timeout=10)
            assert r.json()["accepted"] == 200
        retry = httpx.post(url + PATH, json=event_list(sent[0]), headers=AUTH, timeout=10)
        assert retry.json()["duplicates"] == 200
    finally:
        stuck.send_signal(signal.SIGKILL)
        stuck.wait(10)
    with open_store(db, read_only=True) as store:
        assert store.count() == 0  # acknowledged, yet only in the spool
    args = ["--db", str(db), "--cluster-token", f"prod={PROD_TOKEN}", "--no-demo"]
    server = serve_process(args, port).start()
    # Replayed before serving: the retry of an acknowledged batch is a duplicate.
    r = httpx.post(server.url + PATH, json=event_list(sent[2]), headers=AUTH, timeout=10)
    assert r.json() == {"accepted": 0, "duplicates": 200, "rejected": []}
    assert server.kill(signal.SIGTERM) == 0
    assert not list(spool_dir(db).glob("*.spool"))
    rows = stored_rows(db)
    expected = {(e["auditID"], e["stage"]) for items in sent for e in items}
    assert len(rows) == len(set(rows)) == len(expected) and set(rows) == expected
