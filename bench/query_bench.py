"""Benchmark of the query language (issue 3): six questions over N generated events.

For each question it reports the median latency of (1) the compiled query run the way
``kubetrail query`` runs it (``run_query``: parse, compile, execute, fetch), (2) hand-written
SQL on the same DuckDB store, and, for q1 and q2, (3) ``jq`` over the same events as JSON lines.

Usage::

    python bench/query_bench.py --events 1000000 --workdir /tmp/ktbench [--repeat 7] [--no-jq]

The events come from ``kubetrail.demo.generate_events`` (seed 1) and are ingested once; later runs
reuse ``WORKDIR/events-N.jsonl`` and ``WORKDIR/events-N.duckdb``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from kubetrail.demo import generate_events
from kubetrail.pipeline import ingest_paths
from kubetrail.query import run_query
from kubetrail.store import open_store

GOALS_MS = {"q1": 50, "q2": 50, "q3": 50, "q4": 300, "q5": 100, "q6": 500}

JQ = {
    "q1": '[inputs | select(.stage=="ResponseComplete" or .stage=="Panic") | .verb]'
    " | group_by(.) | map({key: .[0], value: length}) | from_entries",
    "q2": '[inputs | select((.stage=="ResponseComplete" or .stage=="Panic")'
    " and .responseStatus.code==403) | .user.username] | group_by(.)"
    " | map({user: .[0], count: length}) | sort_by(-.count) | .[:10]",
}


def prepare(workdir: Path, n: int) -> tuple[Path, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    events, db = workdir / f"events-{n}.jsonl", workdir / f"events-{n}.duckdb"
    if not events.exists():
        with events.open("wb") as out:
            for line in generate_events(n, seed=1):
                out.write(line + b"\n")
    if not db.exists():
        store = open_store(db)
        ingest_paths(store, [str(events)], "bench")
        store.close()
    return events, db


def paired_median_ms(
    first: Callable[[], object], second: Callable[[], object], repeat: int
) -> tuple[float, float]:
    """Medians of two ways to answer one question, run alternately (so that a change in the
    machine's load or caches during the run hits both alike)."""
    first(), second()  # warm up (file cache, DuckDB buffers)
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for func, out in ((first, samples[0]), (second, samples[1])):
            start = time.perf_counter()
            func()
            out.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples[0]), statistics.median(samples[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ktbench"))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-jq", action="store_true")
    args = parser.parse_args()

    events, db = prepare(args.workdir, args.events)
    store = open_store(db, read_only=True)
    last = store.query("SELECT max(request_received) FROM events").column(0)[0].as_py()
    since = last - timedelta(hours=24)
    audit_id = (
        store.query("SELECT audit_id FROM events WHERE verb = 'delete' LIMIT 1")
        .column(0)[0]
        .as_py()
    )
    # (query-language text, keyword arguments of run_query, hand-written SQL)
    questions: dict[str, tuple[str, dict[str, object], str]] = {
        "q1": (
            "| stats count() by verb",
            {},
            "SELECT verb, count(*) FROM events WHERE is_final GROUP BY verb",
        ),
        "q2": (
            "code=403 | top user 10",
            {},
            "SELECT username, count(*) AS c FROM events WHERE is_final AND response_code = 403"
            " GROUP BY username ORDER BY c DESC LIMIT 10",
        ),
        "q3": (
            "verb=delete | stats count() by resource, user",
            {"time_from": since},
            "SELECT resource, username, count(*) FROM events WHERE is_final AND verb = 'delete'"
            f" AND request_received >= TIMESTAMP '{since.isoformat(sep=' ')}'"
            " GROUP BY resource, username",
        ),
        "q4": (
            "| timechart span=5m count() by verb",
            {},
            "SELECT time_bucket(INTERVAL 5 MINUTE, request_received) AS t, verb, count(*)"
            " FROM events WHERE is_final GROUP BY t, verb ORDER BY t, verb",
        ),
        "q5": (
            f'id="{audit_id}" stage=* | fields time, stage, user, verb, uri',
            {"limit": 1000},
            "SELECT request_received, stage, username, verb, request_uri FROM events"
            f" WHERE audit_id = '{audit_id}'",
        ),
        "q6": (
            'uri:"/secrets/" | fields time, user, verb, uri',
            {"limit": 100},
            "SELECT request_received, username, verb, request_uri FROM events"
            " WHERE is_final AND request_uri LIKE '%/secrets/%'"
            " ORDER BY request_received DESC LIMIT 100",
        ),
    }
    total = store.count()
    print(f"events in store: {total:,} (generated {args.events:,}); median of {args.repeat} runs")
    print(
        "| question | kubetrail query (ms) | hand-written SQL (ms) | ratio | goal (ms) | jq (ms) |"
    )
    print("|---|---|---|---|---|---|")
    for key, (text, kwargs, sql) in questions.items():
        compiled_ms, hand_ms = paired_median_ms(
            lambda t=text, k=kwargs: run_query(store, t, **k),  # type: ignore[misc]
            lambda s=sql: store.query(s),
            args.repeat,
        )
        jq_ms = ""
        if key in JQ and not args.no_jq and shutil.which("jq"):
            start = time.perf_counter()
            subprocess.run(
                ["jq", "-n", "-c", JQ[key], str(events)], check=True, capture_output=True
            )
            jq_ms = f"{(time.perf_counter() - start) * 1000:.0f}"
        print(
            f"| {key} `{text}` | {compiled_ms:.1f} | {hand_ms:.1f} |"
            f" {compiled_ms / hand_ms:.2f} | {GOALS_MS[key]} | {jq_ms} |"
        )
    store.close()


if __name__ == "__main__":
    main()
