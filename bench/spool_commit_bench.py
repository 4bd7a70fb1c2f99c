"""The spool committer's choice: one INSERT per spooled request, or one per cluster.

Normalises 40,000 demo events as 100 webhook batches of 400, then stores them into fresh
DuckDB files either as ``write_group`` of the 100 batches (one transaction, one INSERT and one
chain record each; what the webhook writer did before the spool) or as one store batch
(``kubetrail.web.spool_writer.merged``: one INSERT, one chain record), alternating, and prints
the median rate of each over ``--runs`` runs.

    python bench/spool_commit_bench.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kubetrail.demo import generate_events
from kubetrail.model.normalize import normalize_records
from kubetrail.store import open_store
from kubetrail.store.base import BatchMeta
from kubetrail.web.spool_writer import merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=400)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    lines = list(generate_events(args.events, seed=3, end=datetime(2026, 1, 1, tzinfo=UTC)))
    tables = [
        normalize_records(
            list(enumerate(lines[i : i + args.batch], 1)),
            cluster="bench",
            source="webhook",
            batch_id="b",
        ).table
        for i in range(0, len(lines), args.batch)
    ]
    rates: dict[str, list[float]] = {"one INSERT per request": [], "one per cluster": []}
    with tempfile.TemporaryDirectory() as work:
        for run in range(args.runs):
            for name in rates:
                items = [(t, BatchMeta("bench", "webhook", uuid.uuid4().hex)) for t in tables]
                if name == "one per cluster":
                    items = merged(items)
                with open_store(Path(work) / f"{run}-{len(items)}.duckdb") as store:
                    started = time.perf_counter()
                    store.write_group(items)
                    rates[name].append(args.events / (time.perf_counter() - started))
    for name, values in rates.items():
        print(f"{name:>24}: median {statistics.median(values):>9,.0f} events/s over {args.runs}")


if __name__ == "__main__":
    main()
