"""Benchmark of the web UI (issue 7): the overview page over N stored events (goal: < 2 s at 10 M).

It starts the real application (``create_app``, uvicorn on a loopback port) on the store and
times, as medians of several interleaved rounds after one warm-up round:

1. ``GET /ui/overview`` (every widget run with ``run_query`` and the page rendered), over the
   store's last 24 hours (for the bench data set: every stored event);
2. ``GET /api/overview`` (the same widgets as JSON);
3. the baseline: the same groupings as hand-written SQL on the same DuckDB store, run one
   after the other in this process (no HTTP, no query compiler, no rendering).

Usage::

    python bench/ui_bench.py --events 10000000 --workdir /tmp/ktbench [--repeat 5]

The events come from ``kubetrail.demo.generate_events`` (seed 1) and are ingested once
(``bench/query_bench.py`` makes the same files: ``WORKDIR/events-N.duckdb``); the store is
opened read-only, so the "latest alerts" panel reads nothing.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn

from kubetrail.config import ServerConfig
from kubetrail.store import open_store
from kubetrail.web.app import create_app
from kubetrail.web.auth import hash_token
from kubetrail.web.server import uvicorn_config
from query_bench import prepare

TOKEN = "bench-admin-token"
GOAL_MS = 2000
W = "is_final AND request_received >= $start AND request_received < $end"


def _top(column: str, extra: str = "") -> str:
    return (
        f"SELECT {column}, count(*) AS n, count(*) * 100.0 / sum(count(*)) OVER () FROM events"
        f" WHERE {W} AND {column} IS NOT NULL {extra} GROUP BY 1 ORDER BY n DESC LIMIT 10"
    )


#: The overview's queries as hand-written SQL (the baseline): the same scans and groupings.
HAND_SQL = [
    f"SELECT username, actor_kind, count(*) FROM events WHERE {W} AND username IS NOT NULL"
    " GROUP BY 1, 2",  # top users and top service accounts
    _top("namespace"),
    _top("user_agent"),
    _top("source_ips"),
    f"SELECT username, verb, count(*) AS n FROM events WHERE {W} AND actor_kind = 'human'"
    " AND resource = 'secrets' GROUP BY 1, 2 ORDER BY n DESC LIMIT 10",
    f"SELECT username, namespace, name, subresource, count(*), max(request_received) AS l"
    f" FROM events WHERE {W} AND subresource IN ('exec', 'attach') GROUP BY 1, 2, 3, 4"
    " ORDER BY l DESC LIMIT 10",
    f"SELECT resource, verb, count(*) FROM events WHERE {W} GROUP BY 1, 2",  # resources, actions
    f"SELECT response_code, username, count(*) FROM events WHERE {W}"
    " AND response_code IS NOT NULL GROUP BY 1, 2",  # status codes and denied by user
    f"SELECT time_bucket(INTERVAL 15 MINUTE, request_received) AS t, verb, count(*)"
    f" FROM events WHERE {W} GROUP BY 1, 2 ORDER BY 1, 2",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ktbench"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    _, db = prepare(args.workdir, args.events)
    store = open_store(db, read_only=True)
    last = store.query("SELECT max(request_received) FROM events").column(0)[0].as_py()
    end = last + timedelta(seconds=1)
    start = end - timedelta(hours=24)
    in_range = (
        store.query(
            "SELECT count(*) FROM events WHERE request_received >= ? AND request_received < ?",
            [start, end],
        )
        .column(0)[0]
        .as_py()
    )

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = ServerConfig(
        db=str(db), listen=f"127.0.0.1:{port}", admin_token_sha256=[hash_token(TOKEN)]
    )
    server = uvicorn.Server(
        uvicorn_config(create_app(config, store=store), config, log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)

    params = {"range": "custom", "from": start.isoformat() + "Z", "to": end.isoformat() + "Z"}
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def baseline() -> None:
        for sql in HAND_SQL:
            store.query(sql, {"start": start, "end": end})

    samples: dict[str, list[float]] = {"page": [], "api": [], "sql": []}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120) as http:

        def get(path: str) -> None:
            answer = http.get(path, params=params)
            answer.raise_for_status()

        runs: dict[str, Callable[[], object]] = {
            "page": lambda: get("/ui/overview"),
            "api": lambda: get("/api/overview"),
            "sql": baseline,  # the server's own store object, while the server idles
        }
        # interleaved, so that the shared machine's load hits all three alike; round 0 warms up
        for round_no in range(args.repeat + 1):
            for key, func in runs.items():
                started = time.perf_counter()
                func()
                if round_no:
                    samples[key].append((time.perf_counter() - started) * 1000)
    server.should_exit = True
    thread.join(30)
    sock.close()
    page_ms, api_ms, hand_ms = (statistics.median(samples[k]) for k in ("page", "api", "sql"))
    page_samples = samples["page"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"events in store: {args.events:,}; in the overview's 24 h: {in_range:,};"
        f" median of {args.repeat} runs; load average {load} on {os.cpu_count()} cores"
    )
    print("| what | median (ms) | goal (ms) |")
    print("|---|---|---|")
    print(f"| GET /ui/overview (rendered page) | {page_ms:.0f} | {GOAL_MS} |")
    print(f"| GET /api/overview (JSON) | {api_ms:.0f} | |")
    print(f"| baseline: the same {len(HAND_SQL)} questions as hand-written SQL | {hand_ms:.0f} | |")
    print(f"page samples (ms): {', '.join(f'{s:.0f}' for s in page_samples)}")
    print(f"page / baseline: {page_ms / hand_ms:.2f}")


if __name__ == "__main__":
    main()
