"""Webhook ingest vs file import of the same events, in one run.

Generates demo events, imports them from a JSON-lines file into a fresh store (the file-import
rate), then starts ``kubetrail serve`` as a separate process on loopback with another fresh
store and POSTs the same events as 400-event EventLists from several concurrent clients: at
full speed (events/s, p50/p99 time to 200), and at a fixed offered rate (default 10,000
events/s) to measure latency under a steady load, and how long an answered batch takes to reach the
store (the spool's visibility lag, from the server's histogram).

    python bench/webhook_bench.py --events 100000 --clients 4 --rate 10000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from kubetrail.demo import generate_events
from kubetrail.pipeline import ingest_paths
from kubetrail.store import open_store

TOKEN = "bench-token-0123456789"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=400, help="events per EventList")
    parser.add_argument("--clients", type=int, default=4, help="concurrent senders")
    parser.add_argument("--rate", type=float, default=10_000, help="offered events/s (0: skip)")
    parser.add_argument("--seconds", type=float, default=10, help="duration of the rate run")
    parser.add_argument("--skip-max", action="store_true", help="only the file and rate runs")
    parser.add_argument("--keep", action="store_true", help="keep the stores and the event file")
    parser.add_argument(
        "--no-detect", action="store_true", help="run the server without detections"
    )
    args = parser.parse_args()
    _server.detect = not args.no_detect

    work = Path(tempfile.mkdtemp(prefix="kubetrail-bench-"))
    lines = list(generate_events(args.events, seed=3, end=datetime(2026, 1, 1, tzinfo=UTC)))
    source = work / "events.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    bodies = [
        b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":['
        + b",".join(lines[i : i + args.batch])
        + b"]}"
        for i in range(0, len(lines), args.batch)
    ]
    print(
        f"{args.events:,} events, {len(bodies)} EventLists of {args.batch}, {os.cpu_count()} CPUs"
    )

    with open_store(work / "file.duckdb") as store:
        summary = ingest_paths(store, [source], "bench")
    file_rate = summary.read / summary.seconds
    print(f"file import:  {file_rate:>10,.0f} events/s  ({summary.seconds:.2f} s)")

    if not args.skip_max:
        with _server(work / "webhook.duckdb") as url:
            started = time.perf_counter()
            wall, latencies = _send_all(url, bodies, args.clients)
            _wait_spool_empty(url)
            stored_wall = time.perf_counter() - started
        rate = args.events / wall
        print(
            f"webhook max:  {rate:>10,.0f} events/s  ({wall:.2f} s, {args.clients} clients)  "
            f"p50 {_pct(latencies, 50):.1f} ms  p99 {_pct(latencies, 99):.1f} ms  "
            f"ratio {rate / file_rate:.0%} of file import"
        )
        # Answers may run ahead of the store (the spool): the rate at which everything was
        # also in the store is the sustained one.
        stored_rate = args.events / stored_wall
        print(
            f"  in the store: {stored_rate:>8,.0f} events/s  ({stored_wall:.2f} s until the "
            f"spool was empty)  ratio {stored_rate / file_rate:.0%} of file import"
        )
    if args.rate > 0:
        with _server(work / "rate.duckdb") as url:
            sent, latencies = _send_at_rate(url, bodies, args.rate, args.seconds, args.batch)
            print(
                f"webhook @ {args.rate:,.0f}/s offered: {sent:,} events answered  "
                f"p50 {_pct(latencies, 50):.1f} ms  p90 {_pct(latencies, 90):.1f} ms  "
                f"p99 {_pct(latencies, 99):.1f} ms  max {max(latencies):.1f} ms"
            )
            lag = _visibility(url)
            if lag:
                print(
                    f"visibility lag (200 → committed to the store, {lag['count']:.0f} batches): "
                    f"mean {lag['mean'] * 1000:.0f} ms  p50 ≤ {lag['p50'] * 1000:.0f} ms  "
                    f"p99 ≤ {lag['p99'] * 1000:.0f} ms"
                )
    if args.keep:
        print(json.dumps({"work_dir": str(work)}))
    else:
        shutil.rmtree(work, ignore_errors=True)


class _server:
    #: False: the server runs without detections (``detect: {enabled: false}``).
    detect = True

    def __init__(self, db: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.db = db

    def _config(self) -> list[str]:
        if self.detect:
            return []
        path = self.db.with_suffix(".yaml")
        path.write_text("detect:\n  enabled: false\n")
        return ["--config", str(path)]

    def __enter__(self) -> str:
        url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubetrail",
                "serve",
                "--db",
                str(self.db),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--cluster-token",
                f"bench={TOKEN}",
                "--no-demo",
                "--log-level",
                "warning",
                *self._config(),
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(600):  # at most 60 s
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    return url
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit("the server did not start")

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def _post(client: httpx.Client, url: str, body: bytes) -> float:
    started = time.perf_counter()
    while True:
        r = client.post(url + "/ingest/v1/events", content=body)
        if r.status_code == 200:
            return (time.perf_counter() - started) * 1000
        if r.status_code not in (429, 503):
            raise SystemExit(f"unexpected answer {r.status_code}: {r.text}")
        time.sleep(0.01)


def _send_all(url: str, bodies: list[bytes], clients: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    todo = iter(bodies)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def worker() -> None:
        with httpx.Client(headers=headers, timeout=60) as client:
            while True:
                with lock:
                    body = next(todo, None)
                if body is None:
                    return
                ms = _post(client, url, body)
                with lock:
                    latencies.append(ms)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies


def _send_at_rate(
    url: str, bodies: list[bytes], rate: float, seconds: float, batch: int
) -> tuple[int, list[float]]:
    """Open-loop: a batch is due every batch/rate seconds, each on its own thread (like the
    API server, which sends each batch in its own goroutine)."""
    interval = batch / rate
    count = min(len(bodies), int(seconds / interval))
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    client = httpx.Client(headers=headers, timeout=60, limits=httpx.Limits(max_connections=64))
    threads = []
    start = time.perf_counter()
    for i in range(count):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=lambda b=bodies[i]: latencies.append(_post(client, url, b)))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    client.close()
    return count * batch, latencies


def _wait_spool_empty(url: str) -> str:
    """Poll /metrics until the spool holds nothing (at most 120 s); return the last scrape."""
    for _ in range(2400):
        text = httpx.get(url + "/metrics").text
        if "kubetrail_ingest_spool_bytes" not in text or "kubetrail_ingest_spool_bytes 0.0" in text:
            return text
        time.sleep(0.05)
    return text


def _visibility(url: str) -> dict[str, float]:
    """The server's ``kubetrail_ingest_visibility_seconds`` histogram, once the spool is empty:
    mean, and the bucket bounds that hold the 50th and 99th percentiles."""
    text = _wait_spool_empty(url)
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("kubetrail_ingest_visibility_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
        elif line.startswith("kubetrail_ingest_visibility_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("kubetrail_ingest_visibility_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
    if not count:
        return {}

    def bound(q: float) -> float:
        return next(le for le, n in buckets if n >= q * count)

    return {"count": count, "mean": total / count, "p50": bound(0.5), "p99": bound(0.99)}


def _pct(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


if __name__ == "__main__":
    main()
