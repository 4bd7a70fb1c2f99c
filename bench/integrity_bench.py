"""Cost of the hash chain on ingest, and the time ``kubetrail verify`` takes.

* ``chain off`` / ``chain on``: ``ingest_paths`` into a fresh store with the import settings of
  ``kubetrail ingest``, with the chain disabled (the baseline) and enabled, interleaved, each run
  in its own process; the table gives medians of ``--runs`` runs.
* ``verify``: ``verify_store`` over the store the last ``chain on`` run built (every batch's
  events read back, sorted and hashed), medians of ``--runs`` runs, in events per second.

Each figure is given as wall-clock events per second and as CPU time per event (user + system,
all threads of the process): on a machine shared with other work the wall clock moves with
their load, the CPU time much less, so the CPU ratio is the steadier measure of the cost.

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
import json, resource, sys, time
from kubetrail.pipeline import ingest_paths
from kubetrail.store import INGEST_SETTINGS
from kubetrail.store.duckdb import DuckDBStore
from kubetrail.store.verify import verify_store
mode, data, db = sys.argv[1:4]
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
if mode == "verify":
    store = DuckDBStore(db, read_only=True)
    started, cpu0 = time.perf_counter(), cpu()
    report = verify_store(store)
    seconds, cpu_seconds = time.perf_counter() - started, cpu() - cpu0
    assert report.ok, report.problems[:3]
    events = sum(c.events for c in report.clusters.values())
else:
    store = DuckDBStore(db, chain=(mode == "on"), **INGEST_SETTINGS)
    started, cpu0 = time.perf_counter(), cpu()
    events = ingest_paths(store, [data], cluster="bench").stored
    seconds, cpu_seconds = time.perf_counter() - started, cpu() - cpu0
store.close()
print(json.dumps({"seconds": seconds, "cpu": cpu_seconds, "events": events}))
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
    cpu_us: dict[str, list[float]] = {"off": [], "on": [], "verify": []}

    def record(mode: str, result: dict[str, float], run: int) -> None:
        rates[mode].append(result["events"] / result["seconds"])
        cpu_us[mode].append(result["cpu"] / result["events"] * 1e6)
        print(
            f"run {run + 1} {mode}: {rates[mode][-1]:,.0f} events/s, "
            f"{cpu_us[mode][-1]:.1f} CPU us/event",
            file=sys.stderr,
        )

    for run in range(args.runs):
        for mode in ("off", "on") if run % 2 == 0 else ("on", "off"):
            db = fresh_db(args.workdir, f"integrity-{mode}")
            record(mode, child(mode, data, db), run)
    db = args.workdir / "integrity-on.duckdb"
    for run in range(args.runs):
        record("verify", child("verify", data, db), run)
    med = {k: (statistics.median(rates[k]), statistics.median(cpu_us[k])) for k in rates}
    (off, off_cpu), (on, on_cpu), (verify, verify_cpu) = med["off"], med["on"], med["verify"]
    print("| measure | events/s (wall) | CPU us/event | wall ratio | CPU ratio |")
    print("|---|---:|---:|---:|---:|")
    print(f"| ingest, chain off (baseline) | {off:,.0f} | {off_cpu:.1f} | 1.00 | 1.00 |")
    print(
        f"| ingest, chain on | {on:,.0f} | {on_cpu:.1f} | {on / off:.3f} | {on_cpu / off_cpu:.3f} |"
    )
    print(f"| verify | {verify:,.0f} | {verify_cpu:.1f} | | |")
    print(f"10 M events at the verify rate: {10_000_000 / verify:,.0f} s (linear extrapolation)")
    print(time.strftime("measured %Y-%m-%d %H:%M UTC", time.gmtime()))


if __name__ == "__main__":
    main()
