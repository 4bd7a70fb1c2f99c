"""POST /ingest/v1/events over real HTTP on loopback: formats, answers, errors, durability."""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from live import (
    ADMIN_TOKEN,
    AUTH,
    PATH,
    PROD_TOKEN,
    assert_error,
    base_config,
    demo_events,
    event_list,
)

from kubetrail.errors import StoreError
from kubetrail.store import open_store
from testdata import EVENT_FILES, EVENTLIST_FILE, read_json_lines


def test_eventlist_round_trip_with_token(start_server: Any) -> None:
    live = start_server()
    items = demo_events(400)
    r = httpx.post(live.url + PATH, json=event_list(items), headers=AUTH)
    assert r.status_code == 200
    assert r.json() == {"accepted": 400, "duplicates": 0, "rejected": []}
    assert live.count("prod") == 400


def test_real_events_v1_and_v1beta1(start_server: Any) -> None:
    live = start_server()
    total = 0
    for path in EVENT_FILES:
        events = read_json_lines(path)
        version = events[0].get("apiVersion", "audit.k8s.io/v1")
        r = httpx.post(live.url + PATH, json=event_list(events, version), headers=AUTH)
        assert r.status_code == 200, r.text
        body = r.json()
        total += body["accepted"]
        assert body["accepted"] + body["duplicates"] + len(body["rejected"]) == len(events)
    assert live.count("prod") == total > 0


def test_recorded_webhook_eventlists(start_server: Any) -> None:
    live = start_server()
    total = 0
    for line in EVENTLIST_FILE.read_bytes().splitlines():
        r = httpx.post(live.url + PATH, content=line, headers=AUTH)
        assert r.status_code == 200 and r.json()["rejected"] == []
        total += r.json()["accepted"]
    assert live.count("prod") == total > 0


def test_single_event_json_lines_array_and_gzip(start_server: Any) -> None:
    live = start_server()
    items = demo_events(30)
    single = httpx.post(live.url + PATH, json=items[0], headers=AUTH)
    assert single.json()["accepted"] == 1
    lines = b"\n".join(json.dumps(e).encode() for e in items[1:10]) + b"\n"
    ndjson = {**AUTH, "Content-Type": "application/x-ndjson"}
    assert httpx.post(live.url + PATH, content=lines, headers=ndjson).json()["accepted"] == 9
    array = json.dumps(items[10:20]).encode()
    json_type = {**AUTH, "Content-Type": "application/json"}
    assert httpx.post(live.url + PATH, content=array, headers=json_type).json()["accepted"] == 10
    gz = gzip.compress(json.dumps(event_list(items[20:])).encode())
    r = httpx.post(live.url + PATH, content=gz, headers={**json_type, "Content-Encoding": "gzip"})
    assert r.json() == {"accepted": 10, "duplicates": 0, "rejected": []}
    assert live.count("prod") == 30


def test_retried_batch_is_stored_once(start_server: Any) -> None:
    live = start_server()
    body = event_list(demo_events(400))
    first = httpx.post(live.url + PATH, json=body, headers=AUTH).json()
    again = httpx.post(live.url + PATH, json=body, headers=AUTH).json()
    assert first["accepted"] == 400 and first["duplicates"] == 0
    assert again == {"accepted": 0, "duplicates": 400, "rejected": []}
    assert live.count() == 400


def test_partly_bad_batch_stores_the_good_events(start_server: Any, tmp_path: Path) -> None:
    live = start_server()
    items: list[Any] = demo_events(5)
    del items[1]["verb"]
    items[3] = "not an event"
    r = httpx.post(live.url + PATH, json=event_list(items), headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 3
    assert [x["index"] for x in body["rejected"]] == [1, 3]
    assert "verb" in body["rejected"][0]["reason"]
    assert live.count() == 3
    quarantined = (tmp_path / "audit.duckdb.quarantine.jsonl").read_text().splitlines()
    assert len(quarantined) == 2


def test_cluster_comes_from_the_credential(start_server: Any) -> None:
    live = start_server()
    items = demo_events(3)
    for item in items:
        item["cluster"] = "evil"
        item.setdefault("annotations", {})["cluster"] = "evil"
    httpx.post(live.url + PATH, json=event_list(items), headers=AUTH)
    named = httpx.post(
        live.url + "/ingest/v1/clusters/prod/events",
        json=event_list(demo_events(2, 5)),
        headers=AUTH,
    )
    assert named.status_code == 200
    assert live.count("prod") == 5 and live.count("evil") == 0


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Basic {PROD_TOKEN}"}, 401),
        ({"Authorization": f"Bearer {ADMIN_TOKEN}"}, 403),
    ],
)
def test_credential_errors(start_server: Any, headers: dict[str, str], status: int) -> None:
    live = start_server()
    r = httpx.post(live.url + PATH, json=event_list(demo_events(1)), headers=headers)
    assert_error(r, status)
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_request_errors(start_server: Any) -> None:
    live = start_server()
    config = live.config
    config.limits.max_body_bytes = 10_000  # read per request: applies at once
    config.limits.max_decompressed_bytes = 50_000
    url = live.url + PATH
    other = httpx.post(
        live.url + "/ingest/v1/clusters/dev/events", json=event_list([]), headers=AUTH
    )
    assert "dev" in assert_error(other, 403)["error"]
    assert_error(httpx.post(url, content=b"x" * 20_000, headers=AUTH), 413)

    def chunks() -> Any:
        for _ in range(20):
            yield b" " * 1000

    assert_error(httpx.post(url, content=chunks(), headers=AUTH), 413)  # chunked, no length
    bomb = gzip.compress(b" " * 1_000_000)
    gz = {**AUTH, "Content-Encoding": "gzip"}
    assert_error(httpx.post(url, content=bomb, headers=gz), 413)
    text = {**AUTH, "Content-Type": "text/plain"}
    assert_error(httpx.post(url, content=b"{}", headers=text), 415)
    brotli = {**AUTH, "Content-Encoding": "br"}
    assert_error(httpx.post(url, content=b"{}", headers=brotli), 415)
    assert_error(httpx.post(url, content=b"{not json", headers=AUTH), 400)
    assert_error(httpx.post(url, content=b"", headers=AUTH), 400)
    assert_error(httpx.post(url, content=b"hello", headers=AUTH), 400)
    assert_error(httpx.post(url, content=b"\x1f\x8bbroken", headers=gz), 400)
    assert_error(httpx.get(url), 405)
    assert_error(httpx.get(live.url + "/nowhere"), 404)


class _SlowStore:
    """A store whose writes wait for a gate (or fail), to fill the queue."""

    def __init__(self, path: Path, fail: bool = False) -> None:
        self.inner = open_store(path)
        self.path = self.inner.path
        self.gate = threading.Event()
        self.fail = fail

    def write_batch(self, table: Any, meta: Any) -> Any:
        self.gate.wait(20)
        if self.fail:
            raise StoreError("disk full")
        return self.inner.write_batch(table, meta)

    def close(self) -> None:
        self.inner.close()


def test_full_queue_answers_429_with_retry_after(start_server: Any, tmp_path: Path) -> None:
    store = _SlowStore(tmp_path / "slow.duckdb")
    config = base_config(tmp_path / "slow.duckdb")
    config.limits.max_pending_batches = 2
    live = start_server(config, store=store)
    results: list[int] = []

    def send(seed: int) -> None:
        body = event_list(demo_events(10, seed))
        results.append(httpx.post(live.url + PATH, json=body, headers=AUTH, timeout=30).status_code)

    senders = [threading.Thread(target=send, args=(s,)) for s in (1, 2)]
    try:
        for t in senders:
            t.start()
        for _ in range(200):  # until both are admitted (bounded: 200 × 25 ms)
            if httpx.get(live.url + "/readyz").json()["queue_full"]:
                break
            threading.Event().wait(0.025)
        r = httpx.post(live.url + PATH, json=event_list(demo_events(10, 3)), headers=AUTH)
        assert_error(r, 429)
        assert r.headers["Retry-After"] == "1"
        assert httpx.get(live.url + "/readyz").json()["pending_batches"] == 2
    finally:
        store.gate.set()
        for t in senders:
            t.join(30)
    assert results == [200, 200]
    assert live.count() == 20


def test_store_failure_answers_503(start_server: Any, tmp_path: Path) -> None:
    store = _SlowStore(tmp_path / "bad.duckdb", fail=True)
    store.gate.set()
    live = start_server(base_config(tmp_path / "bad.duckdb"), store=store)
    r = httpx.post(live.url + PATH, json=event_list(demo_events(3)), headers=AUTH)
    assert "disk full" in assert_error(r, 503)["error"]
    assert r.headers["Retry-After"]


def test_health_ready_and_metrics(start_server: Any) -> None:
    live = start_server()
    assert httpx.get(live.url + "/healthz").json() == {"ok": True}
    assert httpx.get(live.url + "/readyz").json()["ok"] is True
    items: list[Any] = demo_events(4)
    items[0] = {"kind": "Event"}
    httpx.post(live.url + PATH, json=event_list(items), headers=AUTH)
    httpx.post(live.url + PATH, json=event_list(items), headers=AUTH)
    httpx.post(live.url + PATH, json=event_list(items))
    text = httpx.get(live.url + "/metrics").text
    assert 'kubetrail_ingest_events_received_total{cluster="prod"} 8.0' in text
    assert 'kubetrail_ingest_events_stored_total{cluster="prod"} 3.0' in text
    assert 'kubetrail_ingest_events_duplicate_total{cluster="prod"} 3.0' in text
    assert 'kubetrail_ingest_events_rejected_total{cluster="prod",reason=' in text
    assert 'kubetrail_ingest_batches_total{cluster="-",status="401"} 1.0' in text
    assert 'kubetrail_ingest_commit_seconds_count{cluster="prod"} 2.0' in text
    assert "kubetrail_ingest_queue_depth 0.0" in text
    assert 'kubetrail_ingest_bytes_total{cluster="prod"}' in text


def test_deeply_nested_line_is_refused_alone_and_the_good_one_stored(start_server: Any) -> None:
    live = start_server()
    deep = b'{"kind":"Event","x":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    body = json.dumps(demo_events(1)[0]).encode() + b"\n" + deep + b"\n"
    headers = {**AUTH, "Content-Type": "application/x-ndjson"}
    answer = httpx.post(live.url + PATH, content=body, headers=headers)
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 1
    [rejected] = answer.json()["rejected"]
    assert rejected["index"] == 1 and "nested" in rejected["reason"]
