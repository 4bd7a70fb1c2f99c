"""Ingest through one collector, same events, same run: DuckDB's fast path, and ClickHouse with
the pipeline's queue of 1 decoded chunk (before) and of 8 (``ClickHouseStore.write_queue_chunks``).

A third mode, the server extracting the columns from the raw JSON, was measured here on
2026-11-23 (35,893 events/s against 46,737 for the queue of 8 alone) and removed as no faster;
docs/scale-out.md keeps the numbers.

Usage::

    python bench/clickhouse_ingest_bench.py --events 1000000 --workdir /tmp/ktq --repeat 1

A ClickHouse 26 server is started from ``chdb-core`` on 127.0.0.1 (``tests/clickhouse_server.py``)
and stopped at the end. Each round ingests into fresh stores, the modes in turns; the table
gives the median of the rounds: seconds, events/s, collector CPU and server CPU seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from clickhouse_bench import events_file
from kubetrail.pipeline import ingest_paths
from kubetrail.store import open_store
from kubetrail.store.clickhouse import ClickHouseStore

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

MODES = (
    "DuckDB (embedded, fast path)",
    "ClickHouse, queue of 1 (before)",
    "ClickHouse, queue of 8 (default)",
)


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


def one(mode: str, path: Path, workdir: Path, url: str, server: psutil.Process) -> dict[str, float]:
    """Ingest the file once into a fresh store of ``mode``."""
    if mode.startswith("DuckDB"):
        db = workdir / "fastpath-bench.duckdb"
        for suffix in ("", ".wal"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        store: Any = open_store(db)
    else:
        store = ClickHouseStore(url, database=f"fp_{uuid.uuid4().hex[:8]}")
        if "before" in mode:
            store.write_queue_chunks = 1
    try:
        cpu0, server0 = time.process_time(), _cpu(server)
        start = time.perf_counter()
        summary = ingest_paths(store, [str(path)], "bench")
        seconds = time.perf_counter() - start
        found = {
            "seconds": seconds,
            "rate": summary.read / seconds,
            "collector_cpu": time.process_time() - cpu0,
            "server_cpu": _cpu(server) - server0 if not mode.startswith("DuckDB") else 0.0,
        }
        assert summary.stored == summary.read, summary
        if isinstance(store, ClickHouseStore):
            store._client.command(f"DROP DATABASE {store.database}")
        return found
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ktbench"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average at the start: {' '.join(f'{x:.1f}' for x in psutil.getloadavg())}")
    path = events_file(args.workdir, args.events)
    from clickhouse_server import ClickHouseServer

    server = ClickHouseServer(args.workdir / f"clickhouse-{uuid.uuid4().hex[:8]}").start()
    try:
        assert server.process is not None
        process = psutil.Process(server.process.pid)
        runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        for _ in range(args.repeat):
            for mode in MODES:
                runs[mode].append(one(mode, path, args.workdir, server.url, process))
    finally:
        server.stop()
    print(f"\n{args.events:,} events, median of {args.repeat} round(s)\n")
    print("| ingest (one collector) | seconds | events/s | collector CPU s | server CPU s |")
    print("|---|---|---|---|---|")
    for mode, found in runs.items():
        m = {key: statistics.median(r[key] for r in found) for key in found[0]}
        print(
            f"| {mode} | {m['seconds']:.1f} | {m['rate']:,.0f} | {m['collector_cpu']:.1f} |"
            f" {m['server_cpu']:.1f} |"
        )
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in psutil.getloadavg())}")


if __name__ == "__main__":
    main()
