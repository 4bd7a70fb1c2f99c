"""Benchmark: audit-policy evaluation by the reference evaluator and by the compiled SQL CASE.

    python bench/policy_bench.py --events 1000000 --scale-to 10000000

Steps: generate demo traffic (``kubetrail.demo``), ingest it into a DuckDB store, then measure
(1) the reference evaluator (request attributes + first-match evaluation, no cache) in requests
per second on a sample, (2) ``policy simulate``'s event path (with its per-request cache), and
(3) the compiled form: ``tally_store`` (the whole ``simulate --db`` aggregate) over every stored
event. ``--scale-to`` then multiplies the stored rows inside DuckDB (bench only) to time the
compiled simulation at that size. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_POLICY = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "data"
    / "policies"
    / "gke-gce-configure-helper.yaml"
)


def _timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--events", type=int, default=1_000_000, help="demo events to generate and store"
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--policy", default=str(DEFAULT_POLICY))
    ap.add_argument(
        "--sample", type=int, default=200_000, help="events for the reference evaluator"
    )
    ap.add_argument(
        "--scale-to", type=int, default=0, help="also time compiled simulation at this many rows"
    )
    ap.add_argument("--workdir", default=None, help="keep the generated file and database here")
    args = ap.parse_args()

    import duckdb
    import msgspec

    from kubetrail.demo.generate import write_events
    from kubetrail.pipeline import ingest_paths
    from kubetrail.policy import dbsim
    from kubetrail.policy.evaluate import evaluate_event
    from kubetrail.policy.loader import load_policy_file
    from kubetrail.policy.simulate import summarize, tally_events
    from kubetrail.store import open_store

    work = Path(args.workdir or tempfile.mkdtemp(prefix="kt-policy-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    events_file = work / f"demo-{args.events}-{args.seed}.jsonl"
    db_file = work / f"demo-{args.events}-{args.seed}.duckdb"
    result: dict[str, Any] = {
        "events": args.events,
        "policy": Path(args.policy).name,
        "cpu_count": os.cpu_count(),
    }
    if not events_file.exists():
        with events_file.open("wb") as fh:
            _, result["generate_s"] = _timed(lambda: write_events(fh, args.events, args.seed))
    if not db_file.exists():
        store = open_store(str(db_file))
        _, result["ingest_s"] = _timed(lambda: ingest_paths(store, [str(events_file)]))
        store.close()
    policy = load_policy_file(args.policy)

    sample = []
    with events_file.open("rb") as fh:
        for line in fh:
            sample.append(msgspec.json.decode(line))
            if len(sample) >= args.sample:
                break
    _, t = _timed(lambda: [evaluate_event(policy, e) for e in sample])
    result["reference_requests_per_s"] = round(len(sample) / t)
    _, t = _timed(lambda: tally_events(policy, sample))
    result["simulate_events_path_per_s"] = round(len(sample) / t)

    store = open_store(str(db_file), read_only=True)
    stored = store.count()
    dbsim.tally_store(store, policy)  # warm the file cache
    tally, t = _timed(lambda: dbsim.tally_store(store, policy))
    sim = summarize(policy, tally)
    result.update(
        stored=stored,
        compiled_simulate_s=round(t, 3),
        compiled_rows_per_s=round(stored / t),
        reduction=round(sim.reduction, 4),
    )
    _, t = _timed(lambda: dbsim.tally_store(store, policy, exact_bytes=False))
    result["compiled_simulate_sampled_bytes_s"] = round(t, 3)
    _, t = _timed(lambda: sum(1 for _ in dbsim.per_event_store(store, policy)))
    result["compiled_per_event_s"] = round(t, 3)
    store.close()

    if args.scale_to > stored:
        big = work / f"scaled-{args.scale_to}.duckdb"
        if not big.exists():
            shutil.copyfile(db_file, big)
            con = duckdb.connect(str(big))
            while (n := con.execute("SELECT count(*) FROM events").fetchone()[0]) < args.scale_to:
                con.execute("INSERT INTO events SELECT * FROM events LIMIT ?", [args.scale_to - n])
            con.close()
        store = open_store(str(big), read_only=True)
        dbsim.tally_store(store, policy)
        _, t = _timed(lambda: dbsim.tally_store(store, policy))
        _, t_exact = _timed(lambda: dbsim.tally_store(store, policy, exact_bytes=True))
        result.update(
            scaled_rows=store.count(),
            scaled_compiled_simulate_s=round(t, 3),
            scaled_compiled_simulate_exact_bytes_s=round(t_exact, 3),
        )
        store.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
