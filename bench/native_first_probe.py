"""What would a native-first import cost? DuckDB reads the file and builds every column itself.

A probe for the design of issue 2's import, not a kubetrail code path: one ``INSERT … SELECT``
from ``read_ndjson_objects`` into kubetrail's events table, with the fast path's own SQL for
the columns (``store.duckdb_raw.insert_sql``: the extracted fields, the derived ones, the
audit key), timestamps parsed by DuckDB, no dedupe, no hash chain, no quarantine, no line
numbers. Three filters, each in its own process and its own fresh database:

* ``none``: every line is stored;
* ``checks``: the required fields and ``kind`` checked in the ``WHERE`` clause;
* ``checks+redaction``: also leaves out every line the redaction pre-check would send to
  Python (``b"ecret"`` or ``b"Token"`` in a line that is not at level Metadata).

Usage::

    python bench/native_first_probe.py /tmp/ingbench/demo-1000000-seed1.jsonl --memory 2GB

Prints the seconds of ``ingest_bench``'s DuckDB native reader first (the baseline, with its
default memory limit), then of each filter and the rows stored (DuckDB's default two threads),
or the error that stopped it (under a small ``--memory`` the single INSERT runs out of memory).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
import duckdb
from kubetrail.store.duckdb import _events_ddl
from kubetrail.store.duckdb_raw import SHAPE, insert_sql

path, db, memory, where = sys.argv[1:5]
con = duckdb.connect(db, config={"memory_limit": memory})
con.execute("SET enable_progress_bar = false")
con.execute(_events_ddl())
shape = {**SHAPE, "auditID": "VARCHAR", "stage": "VARCHAR", "apiVersion": "VARCHAR",
         "kind": "VARCHAR", "requestReceivedTimestamp": "TIMESTAMP", "stageTimestamp": "TIMESTAMP"}
con.execute(f'''
CREATE TEMP VIEW b AS
SELECT h.auditID AS audit_id, h.stage AS stage, h.requestReceivedTimestamp AS request_received,
       h.stageTimestamp AS stage_time, h.apiVersion AS event_version, NULL::VARCHAR AS command,
       false AS redacted, raw
FROM (SELECT json_transform(json, '{json.dumps(shape)}') AS h, json::VARCHAR AS raw
      FROM read_ndjson_objects('{path}'))
WHERE {where}''')
started = time.perf_counter()
con.execute("BEGIN")
con.execute(insert_sql("b", dedupe=False), {"cluster": "c", "source": "s", "batch_id": "b"})
con.execute("COMMIT")
con.execute("CHECKPOINT")
rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
print(json.dumps({"seconds": time.perf_counter() - started, "rows": rows}))
"""

CHECKS = (
    "h.kind = 'Event' AND h.auditID IS NOT NULL AND h.stage IS NOT NULL "
    "AND h.verb IS NOT NULL AND h.requestURI IS NOT NULL "
    "AND h.requestReceivedTimestamp IS NOT NULL"
)
REDACTION = (
    "NOT (coalesce(h.level, '') NOT IN ('Metadata', 'None') "
    "AND (contains(raw, 'ecret') OR contains(raw, 'Token')))"
)
FILTERS = {"none": "true", "checks": CHECKS, "checks+redaction": f"{CHECKS} AND {REDACTION}"}


def native_reader_seconds(path: Path, db: str) -> float:
    """The baseline in the same run: ``ingest_bench``'s DuckDB native reader (its defaults)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ingest_bench import DUCKDB_NATIVE

    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", DUCKDB_NATIVE, str(path), db], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a JSON-lines file of audit events")
    parser.add_argument("--memory", default="2GB", help="DuckDB's memory_limit (default 2GB)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        native = native_reader_seconds(args.path, str(Path(tmp) / "native.duckdb"))
        print(f"native reader (baseline, its own memory limit): process {native:.2f} s", flush=True)
        for name, where in FILTERS.items():
            db = str(Path(tmp) / f"{name}.duckdb")
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.path), db, args.memory, where],
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - started
            if done.returncode != 0:
                lines = done.stderr.strip().splitlines() or ["no output"]
                error = next((line for line in lines if "Error" in line), lines[-1])
                print(f"{name}: failed after {wall:.2f} s: {error[:300]}", flush=True)
                continue
            found = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"{name}: INSERT {found['seconds']:.2f} s, process {wall:.2f} s,"
                f" {found['rows']:,} rows",
                flush=True,
            )


if __name__ == "__main__":
    main()
