"""Cost of the hash chain on ingest, and the time ``kubetrail verify`` takes.

* ``chain off`` / ``chain on``: ``ingest_paths`` into a fresh store with the import settings of
  ``kubetrail ingest``, with the chain disabled (the baseline) and enabled, interleaved, each run
  in its own process; the table gives medians of ``--runs`` runs.
* ``verify``: ``verify_store`` over the store the last ``chain on`` run built (every batch's
  events read back, sorted and hashed), medians of ``--runs`` runs, in events per second.

Usage::

    python bench/integrity_bench.py --events 300000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ingest_bench import ensure_data, fresh_db  # noqa: E402

CHILD = r"""
import json, sys, time
from kubetrail.pipeline import ingest_paths
from kubetrail.store import INGEST_SETTINGS
from kubetrail.store.duckdb import DuckDBStore
from kubetrail.store.verify import verify_store
mode, data, db = sys.argv[1:4]
if mode == "verify":
    store = DuckDBStore(db, read_only=True)
    started = time.perf_counter()
    report = verify_store(store)
    seconds = time.perf_counter() - started
    assert report.ok, report.problems[:3]
    events = sum(c.events for c in report.clusters.values())
else:
    store = DuckDBStore(db, chain=(mode == "on"), **INGEST_SETTINGS)
    started = time.perf_counter()
    events = ingest_paths(store, [data], cluster="bench").stored
    seconds = time.perf_counter() - started
store.close()
print(json.dumps({"seconds": seconds, "events": events}))
"""


def child(mode: str, data: Path, db: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(data), str(db)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kubetrail-bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = ensure_data(args.workdir, args.events, args.seed)
    rates: dict[str, list[float]] = {"off": [], "on": [], "verify": []}
    for run in range(args.runs):
        for mode in ("off", "on") if run % 2 == 0 else ("on", "off"):
            db = fresh_db(args.workdir, f"integrity-{mode}")
            result = child(mode, data, db)
            rates[mode].append(result["events"] / result["seconds"])
            print(f"run {run + 1} chain {mode}: {rates[mode][-1]:,.0f} events/s", file=sys.stderr)
    db = args.workdir / "integrity-on.duckdb"
    for run in range(args.runs):
        result = child("verify", data, db)
        rates["verify"].append(result["events"] / result["seconds"])
        print(f"run {run + 1} verify: {rates['verify'][-1]:,.0f} events/s", file=sys.stderr)
    off, on, verify = (statistics.median(rates[k]) for k in ("off", "on", "verify"))
    print(f"| ingest, chain off (baseline) | {off:,.0f} events/s | 1.00 |")
    print(f"| ingest, chain on | {on:,.0f} events/s | {on / off:.3f} |")
    print(f"| verify | {verify:,.0f} events/s | 10 M events in {10_000_000 / verify:,.0f} s |")
    print(time.strftime("measured %Y-%m-%d %H:%M UTC", time.gmtime()))


if __name__ == "__main__":
    main()
