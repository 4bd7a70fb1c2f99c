"""Benchmark of the scale-out engine (issue 8): the embedded store and ClickHouse, same events,
same run: ingest rate through one collector, the six reference queries, FINAL's cost, disk use.

Usage::

    python bench/clickhouse_bench.py --events 1000000 --workdir /tmp/ktbench [--repeat 5]
    python bench/clickhouse_bench.py --events 1000000 --url http://clickhouse:8123
    python bench/clickhouse_bench.py --events 10000000 --url http://127.0.0.1:8123 --reuse

Without ``--url`` a ClickHouse 26 server is started on 127.0.0.1 from the PyPI package
``chdb-core`` (``tests/clickhouse_server.py``) on the same machine, and stopped at the end.
The events come from ``kubetrail.demo.generate_events`` (seed 1), written once to
``WORKDIR/events-N.jsonl``; both stores are created afresh every run, unless ``--reuse`` is
given: then a store that exists already (``WORKDIR/bench-N.duckdb``, the database ``bench_N`` on
the ``--url`` server) is queried as it is, without its ingest (a 10 M store takes 15 minutes).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil

import kubetrail.store.clickhouse as clickhouse_module
from kubetrail.demo import generate_events
from kubetrail.pipeline import ingest_paths
from kubetrail.query import run_query
from kubetrail.store import open_store
from kubetrail.store.clickhouse import ClickHouseStore

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))


def events_file(workdir: Path, n: int) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"events-{n}.jsonl"
    if not path.exists():
        with path.open("wb") as out:
            for line in generate_events(n, seed=1):
                out.write(line + b"\n")
    return path


def interleaved_ms(
    modes: dict[str, tuple[Any, dict[str, Any] | None]],
    query: str | tuple[str, dict[str, Any]],
    repeat: int,
) -> dict[str, float]:
    """Median ms of one question per mode (a store, and read settings for ClickHouse).

    The modes run in turns, ``repeat`` rounds after one warm-up round, so that a change in the
    machine's load during the run (it is shared) hits every mode alike.
    """
    samples: dict[str, list[float]] = {name: [] for name in modes}
    for round_ in range(repeat + 1):
        for name, (store, settings) in modes.items():
            if settings is not None:
                store.read_settings = settings
            start = time.perf_counter()
            if isinstance(query, str):
                store.query(query)
            else:
                run_query(store, query[0], **query[1])
            if round_:
                samples[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def active_parts(store: ClickHouseStore, database: str) -> str:
    """``N parts in M partitions`` of the events table."""
    parts, partitions = store._client.query(
        "SELECT count(), uniqExact(partition) FROM system.parts "
        "WHERE database = {db:String} AND table = 'events' AND active",
        parameters={"db": database},
    ).result_rows[0]
    return f"{parts} parts in {partitions} partitions"


def _collector_cpu() -> float:
    """CPU seconds of this process and of its finished (waited-for) children: the decoding
    child of a large import (``kubetrail.decoder_process``)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_ingest(store: Any, path: Path, server: psutil.Process | None) -> dict[str, float]:
    cpu0, server0 = _collector_cpu(), _cpu(server)
    start = time.perf_counter()
    summary = ingest_paths(store, [str(path)], "bench")
    seconds = time.perf_counter() - start
    return {
        "events": summary.read,
        "stored": summary.stored,
        "seconds": seconds,
        "rate": summary.read / seconds,
        "collector_cpu": _collector_cpu() - cpu0,
        "server_cpu": _cpu(server) - server0,
    }


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


def questions(store: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    last = store.query("SELECT max(request_received) AS t FROM events").column(0)[0].as_py()
    audit_id = (
        store.query("SELECT audit_id FROM events WHERE verb = 'delete' ORDER BY audit_id LIMIT 1")
        .column(0)[0]
        .as_py()
    )
    return {
        "q1": ("| stats count() by verb", {}),
        "q2": ("code=403 | top user 10", {}),
        "q3": (
            "verb=delete | stats count() by resource, user",
            {"time_from": last - timedelta(hours=24)},
        ),
        "q4": ("| timechart span=5m count() by verb", {}),
        "q5": (f'id="{audit_id}" stage=* | fields time, stage, user, verb, uri', {"limit": 1000}),
        "q6": ('uri:"/secrets/" | fields time, user, verb, uri', {"limit": 100}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ktbench"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--url", help="an existing ClickHouse (default: start one with chdb)")
    parser.add_argument(
        "--reuse", action="store_true", help="query existing stores as they are (no ingest)"
    )
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="DATABASE",
        help="another database of the same events on the --url server (e.g. an older schema):"
        " its answers and times, without FINAL, in the same turns after the merges",
    )
    args = parser.parse_args()
    print(f"load average at the start: {' '.join(f'{x:.1f}' for x in psutil.getloadavg())}")

    path = events_file(args.workdir, args.events)
    server = None
    if args.url is None:
        from clickhouse_server import ClickHouseServer

        server = ClickHouseServer(args.workdir / f"clickhouse-{uuid.uuid4().hex[:8]}").start()
    try:
        url = args.url or server.url  # type: ignore[union-attr]
        process = psutil.Process(server.process.pid) if server and server.process else None
        run(args, path, url, process)
    finally:
        if server is not None:
            server.stop()


def run(args: argparse.Namespace, path: Path, url: str, server: psutil.Process | None) -> None:
    db_path = args.workdir / f"bench-{args.events}.duckdb"
    ingests: dict[str, dict[str, float]] = {}
    if not (args.reuse and db_path.exists()):
        for suffix in ("", ".wal"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        duck = open_store(db_path)
        ingests["DuckDB (embedded)"] = timed_ingest(duck, path, None)
        duck.close()

    database = f"bench_{args.events}"
    ch = ClickHouseStore(url, database=database)
    if not (args.reuse and ch.count()):
        ch._client.command(f"DROP DATABASE IF EXISTS {database}")
        ch.close()
        ch = ClickHouseStore(url, database=database)
        ingests["ClickHouse"] = _clickhouse_ingest(ch, path, server)
    print(f"## {args.events:,} events ({path.stat().st_size / 1e6:.0f} MB of JSON lines)\n")
    print("| ingest (one collector) | seconds | events/s | collector CPU s | server CPU s |")
    print("|---|---|---|---|---|")
    for name, m in ingests.items():
        print(
            f"| {name} | {m['seconds']:.1f} | {m['rate']:,.0f} | {m['collector_cpu']:.1f} |"
            f" {m['server_cpu']:.1f} |"
        )
    if "ClickHouse" in ingests:
        check = ingests["ClickHouse"]["check_seconds"]
        print(f"\nduplicate check before insert (ClickHouse): {check:.2f} s in total")
    _queries(args, db_path, ch, database)


def _clickhouse_ingest(
    ch: ClickHouseStore, path: Path, server: psutil.Process | None
) -> dict[str, float]:
    """Ingest through one collector, timing the duplicate check before insert on the way."""
    check_seconds = [0.0]
    original = ch._check_stored  # what every write asks (``_without_stored`` is not on the path)

    def counted(*a: Any, **k: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            check_seconds[0] += time.perf_counter() - start

    ch._check_stored = counted  # type: ignore[method-assign]
    result = timed_ingest(ch, path, server)
    del ch._check_stored
    return {**result, "check_seconds": check_seconds[0]}


def _compare(
    args: argparse.Namespace,
    duck: Any,
    ch: ClickHouseStore,
    asked: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    """The questions on ``--also`` databases and on this run's, without FINAL, in turns."""
    fast = dict(clickhouse_module.READ_SETTINGS)
    others = {name: ClickHouseStore(ch.url, database=name, create=False) for name in args.also}
    modes: dict[str, tuple[Any, dict[str, Any] | None]] = {"duck": (duck, None), "this": (ch, fast)}
    modes.update({name: (store, fast) for name, store in others.items()})
    print(f"\nwithout FINAL, after merges, against: {', '.join(args.also)} (ms, ratio to DuckDB)\n")
    print("| question | DuckDB | this run's database | " + " | ".join(args.also) + " | same rows |")
    print("|---|---|---|" + "---|" * len(args.also) + "---|")
    for key, (text, kwargs) in asked.items():
        times = interleaved_ms(modes, (text, kwargs), args.repeat)
        expected = run_query(duck, text, **kwargs).rows()
        same = all(run_query(s, text, **kwargs).rows() == expected for s in others.values())
        cells = [f"{times['duck']:.1f}"]
        cells += [f"{times[n]:.1f} ({times[n] / times['duck']:.2f})" for n in ("this", *others)]
        print(f"| {key} | " + " | ".join(cells) + f" | {same} |")
    for store in others.values():
        store.close()


def _queries(args: argparse.Namespace, db_path: Path, ch: ClickHouseStore, database: str) -> None:
    duck = open_store(db_path, read_only=True)
    asked = questions(duck)
    exact = dict(clickhouse_module.EXACT_READ_SETTINGS)
    fast = dict(clickhouse_module.READ_SETTINGS)  # exact_reads=False
    same = [
        run_query(duck, text, **kwargs).rows() == run_query(ch, text, **kwargs).rows()
        for text, kwargs in asked.values()
    ]
    trip = interleaved_ms({"duck": (duck, None), "ch": (ch, fast)}, "SELECT 1 AS x", args.repeat)
    print(
        f"\nround trip of `SELECT 1` through store.query: DuckDB {trip['duck']:.2f} ms,"
        f" ClickHouse {trip['ch']:.2f} ms"
    )
    print(f"active parts of events before the queries: {active_parts(ch, database)}")
    modes = {"duck": (duck, None), "final": (ch, exact), "fast": (ch, fast)}
    fresh = [interleaved_ms(modes, q, args.repeat) for q in asked.values()]
    ch.optimize()  # what background merges do over time
    print(f"after OPTIMIZE ... FINAL: {active_parts(ch, database)}")
    merged = [interleaved_ms(modes, q, args.repeat) for q in asked.values()]
    print(
        f"\nqueries: median of {args.repeat} runs, ms (run_query: compile + execute + fetch;"
        " the engines and modes of one question run in turns)\n"
    )
    print(
        "| question | DuckDB | ClickHouse, FINAL (exact_reads) | ratio | without FINAL | ratio |"
        " FINAL after merges | ratio | without FINAL after merges | ratio | same rows |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for i, (key, (text, _)) in enumerate(asked.items()):
        f, m = fresh[i], merged[i]
        cells = [f"{f['duck']:.1f}"]
        for value, base in ((f["final"], f["duck"]), (f["fast"], f["duck"])):
            cells += [f"{value:.1f}", f"{value / base:.2f}"]
        for value in (m["final"], m["fast"]):
            cells += [f"{value:.1f}", f"{value / m['duck']:.2f}"]
        print(f"| {key} `{text[:40]}` | " + " | ".join(cells) + f" | {same[i]} |")
    if args.also:
        _compare(args, duck, ch, asked)
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in psutil.getloadavg())}")

    parts = ch._client.query(
        "SELECT sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts "
        "WHERE database = {db:String} AND table = 'events' AND active",
        parameters={"db": database},
    ).result_rows[0]
    raw = ch._client.query(
        "SELECT data_compressed_bytes, data_uncompressed_bytes FROM system.columns "
        "WHERE database = {db:String} AND table = 'events' AND name = 'raw'",
        parameters={"db": database},
    ).result_rows[0]
    print(
        f"\ndisk: DuckDB {db_path.stat().st_size / 1e6:.0f} MB; ClickHouse {parts[1] / 1e6:.0f} MB"
        f" for {parts[0]:,} rows ({parts[2] / 1e6:.0f} MB uncompressed; raw JSON"
        f" {raw[1] / 1e6:.0f} -> {raw[0] / 1e6:.0f} MB, {raw[1] / max(raw[0], 1):.1f}x)"
    )
    duck.close()
    ch.close()


if __name__ == "__main__":
    main()
