"""Cost of the hash chain on ClickHouse ingest, and the time ``kubetrail verify`` takes there.

* ``chain off`` / ``chain on``: ``ingest_paths`` of the same demo file through one collector
  into a fresh database of one ClickHouse server, interleaved (off, on, off, on, …), medians of
  ``--runs`` runs. ``chain off`` is the store with ``clickhouse_chain.record_batch`` replaced by
  a no-op: the baseline without digests, keys or chain records. Reported: wall-clock events/s,
  the collector's CPU time and the server's CPU time per event.
* ``webhook-sized batches``: the same, but ``write_batch`` of ``--small`` events per batch
  (the size of an API server's webhook batch) for the first 40,000 events, already normalised:
  the chain's fixed cost per batch (one more INSERT) weighs most there.
* ``verify``: ``verify_store`` over the last ``chain on`` database, medians of ``--runs`` runs.

Usage::

    python bench/clickhouse_chain_bench.py --events 1000000 --runs 3 --workdir /tmp/ktchain

Without ``--url`` a ClickHouse 26 server is started on 127.0.0.1 from the PyPI package
``chdb-core`` (``tests/clickhouse_server.py``) and stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import clickhouse_connect
import psutil
import pyarrow as pa

from kubetrail.model import decode_records, normalize
from kubetrail.pipeline import ingest_paths
from kubetrail.store import BatchMeta, clickhouse_chain
from kubetrail.store.clickhouse import ClickHouseStore
from kubetrail.store.verify import verify_store

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from clickhouse_bench import events_file  # noqa: E402

_RECORD = clickhouse_chain.record_batch


def _drop(url: str, database: str) -> None:
    client = clickhouse_connect.get_client(dsn=url)
    client.command(f"DROP DATABASE IF EXISTS {database}")
    client.close()


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


def ingest(url: str, path: Path, chain: bool, server: psutil.Process | None) -> dict[str, float]:
    """Ingest ``path`` into a fresh database with the chain on or off."""
    database = f"chainbench_{'on' if chain else 'off'}"
    _drop(url, database)
    store = ClickHouseStore(url, database=database)
    clickhouse_chain.record_batch = _RECORD if chain else (lambda *a, **k: None)  # type: ignore[assignment]
    try:
        cpu0, server0 = time.process_time(), _cpu(server)
        start = time.perf_counter()
        summary = ingest_paths(store, [str(path)], "bench")
        seconds = time.perf_counter() - start
        collector, server_cpu = time.process_time() - cpu0, _cpu(server) - server0
    finally:
        clickhouse_chain.record_batch = _RECORD  # type: ignore[assignment]
        store.close()
    return {
        "rate": summary.stored / seconds,
        "collector_us": collector / summary.stored * 1e6,
        "server_us": server_cpu / summary.stored * 1e6,
    }


def small_batches(path: Path, size: int, limit: int = 40_000) -> list[pa.Table]:
    """The first ``limit`` events of the file, normalised, in tables of ``size`` events."""
    with path.open("rb") as lines:
        records = [(i, line) for i, line in enumerate(lines, 1) if i <= limit]
    table = normalize(decode_records(records, path.name), cluster="bench", source="webhook",
                      batch_id="").table  # fmt: skip
    return [table.slice(start, size) for start in range(0, table.num_rows, size)]


def write_small(url: str, tables: list[pa.Table], chain: bool) -> dict[str, float]:
    """Write webhook-sized batches one by one into a fresh database."""
    database = f"chainbench_small_{'on' if chain else 'off'}"
    _drop(url, database)
    store = ClickHouseStore(url, database=database)
    clickhouse_chain.record_batch = _RECORD if chain else (lambda *a, **k: None)  # type: ignore[assignment]
    try:
        cpu0 = time.process_time()
        start = time.perf_counter()
        for table in tables:
            store.write_batch(table, BatchMeta("bench", "webhook", uuid.uuid4().hex))
        seconds = time.perf_counter() - start
        collector = time.process_time() - cpu0
    finally:
        clickhouse_chain.record_batch = _RECORD  # type: ignore[assignment]
        store.close()
    events = sum(t.num_rows for t in tables)
    return {"rate": events / seconds, "collector_us": collector / events * 1e6}


def verify(url: str) -> dict[str, float]:
    """Verify the ``chain on`` database once."""
    store = ClickHouseStore(url, database="chainbench_on", create=False)
    try:
        cpu0 = time.process_time()
        start = time.perf_counter()
        report = verify_store(store)
        seconds = time.perf_counter() - start
        assert report.ok, report.problems[:3]
        events = sum(c.events for c in report.clusters.values())
    finally:
        store.close()
    return {"seconds": seconds, "events": events, "collector_cpu": time.process_time() - cpu0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ktchain"))
    parser.add_argument("--small", type=int, default=400, help="events per webhook batch")
    parser.add_argument("--url", help="an existing ClickHouse (default: start one with chdb)")
    args = parser.parse_args()
    path = events_file(args.workdir, args.events)
    server = None
    if args.url is None:
        from clickhouse_server import ClickHouseServer

        server = ClickHouseServer(args.workdir / f"clickhouse-{uuid.uuid4().hex[:8]}").start()
    try:
        url = args.url or server.url  # type: ignore[union-attr]
        process = psutil.Process(server.process.pid) if server and server.process else None
        results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
        small: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
        tables = small_batches(path, args.small)
        for run in range(args.runs):
            for mode in ("off", "on"):
                results[mode].append(ingest(url, path, mode == "on", process))
                print(run, mode, json.dumps(results[mode][-1]), file=sys.stderr)
                small[mode].append(write_small(url, tables, mode == "on"))
                print(run, mode, "small", json.dumps(small[mode][-1]), file=sys.stderr)
        checks = [verify(url) for _ in range(args.runs)]
    finally:
        if server is not None:
            server.stop()
    summary = _summary(args.events, results, checks)
    med = {m: statistics.median(r["rate"] for r in runs) for m, runs in small.items()}
    summary["webhook_sized"] = {
        "events_per_batch": args.small,
        "rate": med,
        "wall_ratio_on_over_off": med["on"] / med["off"],
    }
    print(json.dumps(summary, indent=2))


def _summary(
    events: int, results: dict[str, list[dict[str, float]]], checks: list[dict[str, float]]
) -> dict[str, Any]:
    med = {
        mode: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for mode, runs in results.items()
    }
    return {
        "events": events,
        "ingest": med,
        "wall_ratio_on_over_off": med["on"]["rate"] / med["off"]["rate"],
        "collector_cpu_ratio": med["on"]["collector_us"] / med["off"]["collector_us"],
        "verify_seconds": statistics.median(c["seconds"] for c in checks),
        "verify_seconds_all": [round(c["seconds"], 2) for c in checks],
        "verify_events": checks[-1]["events"],
    }


if __name__ == "__main__":
    main()
