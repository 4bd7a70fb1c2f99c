"""Ingest of one large file through one collector, same events, same run: DuckDB's fast path
(the baseline), ClickHouse as it was before issue 8e, and ClickHouse now.

Modes:

* ``DuckDB (embedded, fast path)``: ``ingest_paths`` as ``kubetrail ingest`` runs it (the
  decoding child sends raw batches, DuckDB extracts the columns).
* ``ClickHouse, in-process reference path (before)``: ``ingest_paths(fast=False)``, which is
  what the pipeline did for ClickHouse before issue 8e (every column built in Python, in the
  process of the writer thread).
* ``ClickHouse, child + server extracts (now)``: ``ingest_paths`` as ``kubetrail ingest``
  runs it: the decoding child sends raw batches, the server extracts the columns
  (``ClickHouseStore.write_raw_batches``).

A third ClickHouse candidate, the child building every column (the reference path) and the
parent only inserting, was measured here in issue 8e and not kept (docs/scale-out.md).

Usage::

    python bench/clickhouse_ingest_bench.py --events 1000000 --workdir /tmp/kt8e --repeat 2

With ``--split-cores`` the server runs on the last core and every mode's collector (this
process and its decoding child; the embedded store too) on the others: the production layout,
where ClickHouse has machines of its own, scaled down to one machine. Without it everything
shares every core, so the server's inserts and merges take CPU from the collector::

    python bench/clickhouse_ingest_bench.py --events 1000000 --workdir /tmp/kt8e --repeat 2 \
        --modes 1,3 --split-cores

A ClickHouse 26 server is started from ``chdb-core`` on 127.0.0.1 (``tests/clickhouse_server.py``)
and stopped at the end. Each round ingests into fresh stores, the modes in turns; the table
gives the median of the rounds: seconds, events/s, collector CPU (its own process and the
decoding child's) and server CPU seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
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
    "ClickHouse, in-process reference path (before)",
    "ClickHouse, child + server extracts (now)",
)


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


def _collector_cpu() -> float:
    """CPU seconds of this process and of its finished (waited-for) children: the decoder."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def one(mode: str, path: Path, workdir: Path, url: str, server: psutil.Process) -> dict[str, float]:
    """Ingest the file once into a fresh store of ``mode``."""
    if mode.startswith("DuckDB"):
        db = workdir / "fastpath-bench.duckdb"
        for suffix in ("", ".wal"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        store: Any = open_store(db)
    else:
        store = ClickHouseStore(url, database=f"fp_{uuid.uuid4().hex[:8]}")
    try:
        cpu0, server0 = _collector_cpu(), _cpu(server)
        start = time.perf_counter()
        if "before" in mode:
            summary = ingest_paths(store, [str(path)], "bench", fast=False)
        else:
            summary = ingest_paths(store, [str(path)], "bench")
        seconds = time.perf_counter() - start
        found = {
            "seconds": seconds,
            "rate": summary.read / seconds,
            "collector_cpu": _collector_cpu() - cpu0,
            "server_cpu": _cpu(server) - server0 if not mode.startswith("DuckDB") else 0.0,
        }
        assert summary.stored == summary.read, summary
        if isinstance(store, ClickHouseStore):
            assert store.count() == summary.read
            store._client.command(f"DROP DATABASE {store.database}")
        return found
    finally:
        store.close()


def split_cores() -> set[int]:
    """Pin this thread to the last core (the server started next inherits it); return the rest.

    Linux applies ``sched_setaffinity(0, …)`` to the calling thread, and a process or thread
    starts with the affinity of the thread that made it.
    """
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("--split-cores needs at least 2 cores")
    os.sched_setaffinity(0, {cores[-1]})
    return set(cores[:-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ktbench"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default="", help="comma-separated mode numbers (1-3): a subset")
    parser.add_argument(
        "--split-cores",
        action="store_true",
        help="the server on the last core, every mode's collector on the others (the production"
        " layout, where the server has machines of its own, scaled down to one machine)",
    )
    args = parser.parse_args()
    modes = [MODES[int(n) - 1] for n in args.modes.split(",")] if args.modes else list(MODES)
    print(f"load average at the start: {' '.join(f'{x:.1f}' for x in psutil.getloadavg())}")
    path = events_file(args.workdir, args.events)
    print(f"events file: {path.stat().st_size / 1e6:.0f} MB")
    from clickhouse_server import ClickHouseServer

    collector_cores = split_cores() if args.split_cores else None
    server = ClickHouseServer(args.workdir / f"clickhouse-{uuid.uuid4().hex[:8]}").start()
    assert server.process is not None
    if collector_cores is not None:
        os.sched_setaffinity(0, collector_cores)  # this process, its threads and the decoder
        server_cores = sorted(os.sched_getaffinity(server.process.pid))
        print(f"server on core(s) {server_cores}, collectors on {sorted(collector_cores)}")
    try:
        process = psutil.Process(server.process.pid)
        runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
        for _ in range(args.repeat):
            for mode in modes:
                runs[mode].append(one(mode, path, args.workdir, server.url, process))
                print(f"  {mode}: {runs[mode][-1]['rate']:,.0f} events/s", flush=True)
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
