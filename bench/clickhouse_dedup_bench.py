"""What exact deduplication by construction costs the collector (issue 8, docs/scale-out.md).

The ingest rate through one collector into ClickHouse, two write paths in turns over the same
events, same run:

* ``pieces`` (kubetrail now): each batch's new rows as one INSERT per day (and shard), each
  with a token of its own keys (``kubetrail.store.clickhouse_pieces``);
* ``one insert`` (the baseline, the write path before): the batch's new rows as one INSERT,
  one token over all its keys, the server's insert settings (here: the same store with
  ``_cut`` giving one piece and ``_insert_piece`` sending it as before).

Each turn writes into a fresh database, the two paths in alternating order; the medians of
``--repeat`` turns per path are printed with the ratios (the machine's load moves the rate a lot;
the collector's CPU time less). ``--days`` spreads the same events over that many days (event
number ``i`` moves ``i % days`` days later), to measure batches that span several partitions.

Usage::

    python bench/clickhouse_dedup_bench.py --events 200000 --repeat 3 --workdir /tmp/kt8a

Without ``--url`` a ClickHouse 26 server is started on 127.0.0.1 from ``chdb-core`` (as in
``bench/clickhouse_bench.py``) and stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa

from kubetrail.demo import generate_events
from kubetrail.pipeline import ingest_paths
from kubetrail.store.clickhouse import ClickHouseStore
from kubetrail.store.clickhouse_pieces import Piece, token

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))


class OneInsertStore(ClickHouseStore):
    """The baseline, the write path before: a batch's new rows as one INSERT under one token
    (one part per day), with the server's insert settings (no ``async_insert = 0``, squashing
    as configured)."""

    def _cut(self, table: pa.Table, cluster: str, lookup: Any = None) -> list[Piece]:
        if table.num_rows == 0:
            return []
        return [Piece(table, token(f"{self.database}.events", cluster, table))]

    def _insert_piece(self, piece: Piece) -> None:
        settings = {"insert_deduplication_token": piece.token}
        if self.cluster:
            settings["distributed_foreground_insert"] = "1"
        self._client.insert_arrow("events", piece.table, database=self.database, settings=settings)


def events_file(workdir: Path, n: int, days: int) -> Path:
    """The demo events (seed 1), each moved to day ``number % days`` after its own."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"dedup-events-{n}-{days}d.jsonl"
    if path.exists():
        return path
    with path.open("wb") as out:
        for number, line in enumerate(generate_events(n, seed=1)):
            if days > 1:
                event = json.loads(line)
                for key in ("requestReceivedTimestamp", "stageTimestamp"):
                    moved = datetime.fromisoformat(event[key].replace("Z", "+00:00"))
                    moved += timedelta(days=number % days)
                    event[key] = moved.isoformat().replace("+00:00", "Z")
                line = json.dumps(event).encode()
            out.write(line + b"\n")
    return path


def ingest(kind: type[ClickHouseStore], url: str, path: Path) -> dict[str, float]:
    database = f"dedup_bench_{uuid.uuid4().hex[:8]}"
    store = kind(url, database=database)
    try:
        cpu0 = time.process_time()
        start = time.perf_counter()
        summary = ingest_paths(store, [str(path)], "bench")
        seconds = time.perf_counter() - start
        parts = store._client.query(
            "SELECT count() FROM system.parts WHERE database = {db:String} "
            "AND table = 'events' AND active",
            parameters={"db": database},
        ).result_rows[0][0]
        rows = store._client.query("SELECT count() FROM events", settings={"final": 0})
        return {
            "rate": summary.read / seconds,
            "seconds": seconds,
            "collector_cpu": time.process_time() - cpu0,
            "parts": float(parts),
            "rows": float(rows.result_rows[0][0]),
        }
    finally:
        store._client.database = "default"
        store._client.command(f"DROP DATABASE IF EXISTS {database}")
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--days", type=int, default=1, help="spread the events over N days")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ktbench"))
    parser.add_argument("--url", help="an existing ClickHouse (default: start one with chdb)")
    args = parser.parse_args()
    path = events_file(args.workdir, args.events, args.days)
    print(f"load average at the start: {' '.join(f'{x:.1f}' for x in psutil.getloadavg())}")
    server = None
    if args.url is None:
        from clickhouse_server import ClickHouseServer

        server = ClickHouseServer(args.workdir / f"clickhouse-{uuid.uuid4().hex[:8]}").start()
    try:
        url = args.url or server.url  # type: ignore[union-attr]
        kinds = {"pieces": ClickHouseStore, "one insert": OneInsertStore}
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in kinds}
        for turn in range(args.repeat):
            order = list(kinds.items())
            for name, kind in order if turn % 2 == 0 else order[::-1]:  # neither always first
                result = ingest(kind, url, path)
                runs[name].append(result)
                print(f"turn {turn + 1} {name}: {result['rate']:,.0f} events/s, "
                      f"collector CPU {result['collector_cpu']:.1f} s, "
                      f"{result['parts']:.0f} parts", flush=True)  # fmt: skip
    finally:
        if server is not None:
            server.stop()
    print(f"\n{args.events:,} events over {args.days} day(s), median of {args.repeat}:\n")
    print("| write path | events/s | seconds | collector CPU s | parts after | rows |")
    print("|---|---|---|---|---|---|")
    medians = {}
    for name, results in runs.items():
        med = {key: statistics.median(r[key] for r in results) for key in results[0]}
        medians[name] = med
        cells = [f"{med['rate']:,.0f}", f"{med['seconds']:.1f}", f"{med['collector_cpu']:.1f}"]
        cells += [f"{med['parts']:.0f}", f"{med['rows']:,.0f}"]
        print(f"| {name} | {' | '.join(cells)} |")
    ratio = medians["pieces"]["rate"] / medians["one insert"]["rate"]
    cpu = medians["pieces"]["collector_cpu"] / medians["one insert"]["collector_cpu"]
    print(f"\npieces / one insert: events/s {ratio:.2f}, collector CPU {cpu:.2f}")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in psutil.getloadavg())}")


if __name__ == "__main__":
    main()
