"""Why DuckDB: group-by questions on the same rows in DuckDB and in SQLite.

SQLite is the embedded database every Python has; DuckDB is the columnar engine kubetrail uses.
Both get the same columns of the same N demo events (SQLite with an index on each filtered
column, its best case); each question runs ``--repeat`` times and the median is reported.

Usage::

    python bench/store_choice_bench.py --events 1000000 [--repeat 5]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from kubetrail.demo import generate_events
from kubetrail.pipeline import ingest_paths
from kubetrail.store import INGEST_SETTINGS, open_store

COLUMNS = (
    "audit_id, stage, is_final, verb, username, resource, namespace, response_code, "
    "request_received"
)

QUESTIONS = {
    "count by verb": "SELECT verb, count(*) FROM events WHERE is_final GROUP BY verb",
    "top 10 users among 403s": (
        "SELECT username, count(*) AS n FROM events WHERE is_final AND response_code = 403 "
        "GROUP BY username ORDER BY n DESC LIMIT 10"
    ),
    "deletes by resource, user": (
        "SELECT resource, username, count(*) FROM events WHERE is_final AND verb = 'delete' "
        "GROUP BY resource, username"
    ),
    "one auditID": "SELECT * FROM events WHERE audit_id = '{audit_id}'",
}


def median_ms(run, repeat: int) -> float:
    run()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "kt-store")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / f"events-{args.events}.jsonl"
    db = args.workdir / f"events-{args.events}.duckdb"
    if not data.exists():
        with data.open("wb") as out:
            for line in generate_events(args.events, seed=1):
                out.write(line + b"\n")
    if not db.exists():
        store = open_store(db, **INGEST_SETTINGS)
        ingest_paths(store, [data])
        store.close()

    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(f"SELECT {COLUMNS} FROM events").fetchall()
    audit_id = rows[len(rows) // 2][0]
    lite_path = args.workdir / f"events-{args.events}.sqlite"
    lite_path.unlink(missing_ok=True)
    lite = sqlite3.connect(lite_path)
    started = time.perf_counter()
    lite.execute(
        "CREATE TABLE events (audit_id TEXT, stage TEXT, is_final INTEGER, verb TEXT, "
        "username TEXT, resource TEXT, namespace TEXT, response_code INTEGER, "
        "request_received TEXT)"
    )
    lite.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", rows)
    for column in ("audit_id", "verb", "response_code", "is_final"):
        lite.execute(f"CREATE INDEX ix_{column} ON events ({column})")
    lite.commit()
    lite_load = time.perf_counter() - started

    print(
        f"{len(rows):,} rows; SQLite load + indexes {lite_load:.1f} s; medians of {args.repeat}\n"
    )
    print("| question | DuckDB (ms) | SQLite (ms) | SQLite / DuckDB |")
    print("|---|---:|---:|---:|")
    for name, sql in QUESTIONS.items():
        text = sql.format(audit_id=audit_id)
        duck = median_ms(lambda t=text: con.execute(t).fetchall(), args.repeat)
        sqlite_ms = median_ms(lambda t=text: lite.execute(t).fetchall(), args.repeat)
        print(f"| {name} | {duck:.1f} | {sqlite_ms:.1f} | {sqlite_ms / duck:.0f}x |")


if __name__ == "__main__":
    main()
