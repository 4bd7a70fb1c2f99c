"""Ingest benchmark: kubetrail against two baselines on the same file, in the same run.

* ``kubetrail``: ``kubetrail ingest FILE --db DB`` (decode, validate, redact, normalise,
  dedupe, store with the raw JSON kept).
* ``duckdb-native``: DuckDB's own JSON reader loading the file into a table with the same
  columns and the raw line kept (zstd), in one statement: the practical ceiling of this stack.
* ``json.loads``: a plain Python loop decoding every line (no storage at all).

Each method runs in its own process, ``--runs`` times, interleaved; the table gives medians.
Those runs are timed only. Peak memory comes from one more run of each method, sampled every
20 ms over the process and its children: PSS (shared pages divided among the processes) and the
sum of their resident sets. Reading PSS makes the kernel walk every page of each process, 50
times a second: on 2 cores that slowed the two-process import by about a fifth (15.3 s against
18-19 s per million events), so the sampled run is not timed.

Usage::

    python bench/ingest_bench.py --events 1000000 --runs 3
    python bench/ingest_bench.py --events 4200000 --runs 1 --only kubetrail   # ~5 GB file
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent

DUCKDB_NATIVE = r"""
import sys, duckdb
from kubetrail.store.duckdb import _events_ddl
path, db = sys.argv[1], sys.argv[2]
shape = ('{"auditID":"VARCHAR","stage":"VARCHAR","level":"VARCHAR","verb":"VARCHAR",'
 '"requestURI":"VARCHAR","user":{"username":"VARCHAR","uid":"VARCHAR","groups":["VARCHAR"]},'
 '"impersonatedUser":{"username":"VARCHAR","groups":["VARCHAR"]},"sourceIPs":["VARCHAR"],'
 '"userAgent":"VARCHAR","objectRef":{"resource":"VARCHAR","namespace":"VARCHAR","name":"VARCHAR",'
 '"apiGroup":"VARCHAR","apiVersion":"VARCHAR","subresource":"VARCHAR"},'
 '"responseStatus":{"code":"INTEGER","reason":"VARCHAR"},"requestReceivedTimestamp":"TIMESTAMP",'
 '"stageTimestamp":"TIMESTAMP","annotations":"MAP(VARCHAR, VARCHAR)","apiVersion":"VARCHAR"}')
con = duckdb.connect(db)
con.execute("SET enable_progress_bar = false")
con.execute(_events_ddl())
con.execute(f'''
INSERT INTO events (cluster, audit_id, stage, level, verb, request_uri, username, user_uid,
  user_groups, impersonated_user, impersonated_groups, source_ips, user_agent, api_group,
  api_version, resource, subresource, namespace, name, response_code, response_reason,
  decision, decision_reason, request_received, stage_time, event_version, raw)
SELECT 'bench', e.auditID, e.stage, e.level, e.verb, e.requestURI, e.user.username, e.user.uid,
  e.user.groups, e.impersonatedUser.username, e.impersonatedUser.groups, e.sourceIPs,
  e.userAgent, e.objectRef.apiGroup, e.objectRef.apiVersion, e.objectRef.resource,
  e.objectRef.subresource, e.objectRef.namespace, e.objectRef.name, e.responseStatus.code,
  e.responseStatus.reason, e.annotations['authorization.k8s.io/decision'],
  e.annotations['authorization.k8s.io/reason'], e.requestReceivedTimestamp, e.stageTimestamp,
  e.apiVersion, raw
FROM (SELECT json_transform(json, '{shape}') AS e, json::VARCHAR AS raw
      FROM read_ndjson_objects('{path}'))''')
con.execute("CHECKPOINT")
con.close()
"""

JSON_LOOP = r"""
import json, sys
n = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        json.loads(line)
        n += 1
print(n)
"""


def run_measured(cmd: list[str], *, sample_memory: bool) -> tuple[float, int, int, str]:
    """Run a command; return wall seconds, peak memory (PSS and RSS, bytes), and its stdout.

    With ``sample_memory``, memory is summed over the process and its children (kubetrail
    decodes a large import in a child process), sampled every 20 ms. PSS divides the pages
    processes share (libraries) among them, so it is the memory the import costs the machine;
    the RSS sum counts shared pages once per process, and for one process equals its RSS.
    Without it the memory figures are 0 and the command runs undisturbed.
    """
    started = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_pss = peak_rss = 0
    while sample_memory and proc.poll() is None:
        try:
            pss = rss = 0
            for p in [proc, *proc.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    info = p.memory_full_info()
                    pss, rss = pss + info.pss, rss + info.rss
            peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}): {err[-2000:]}")
    return seconds, peak_pss, peak_rss, out


def ensure_data(workdir: Path, events: int, seed: int) -> Path:
    path = workdir / f"demo-{events}-seed{seed}.jsonl"
    if not path.exists():
        print(f"generating {events:,} events -> {path}", file=sys.stderr)
        tmp = path.with_suffix(".tmp")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "kubetrail",
                "demo",
                "generate",
                "--events",
                str(events),
                "--seed",
                str(seed),
                "--output",
                str(tmp),
            ],
            check=True,
        )
        tmp.rename(path)
    return path


def fresh_db(workdir: Path, name: str) -> Path:
    db = workdir / f"{name}.duckdb"
    for suffix in ("", ".wal", ".quarantine.jsonl"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return db


def measure(method: str, data: Path, workdir: Path, *, sample_memory: bool) -> dict[str, float]:
    if method == "kubetrail":
        db = fresh_db(workdir, "kubetrail")
        cmd = [
            sys.executable,
            "-m",
            "kubetrail",
            "ingest",
            str(data),
            "--db",
            str(db),
            "--format",
            "json",
        ]
        seconds, pss, rss, out = run_measured(cmd, sample_memory=sample_memory)
        summary = json.loads(out)
        events = summary["read"]
        size = db.stat().st_size
    elif method == "duckdb-native":
        db = fresh_db(workdir, "native")
        seconds, pss, rss, _ = run_measured(
            [sys.executable, "-c", DUCKDB_NATIVE, str(data), str(db)], sample_memory=sample_memory
        )
        events = sum(1 for _ in data.open("rb"))
        size = db.stat().st_size
    else:
        seconds, pss, rss, out = run_measured(
            [sys.executable, "-c", JSON_LOOP, str(data)], sample_memory=sample_memory
        )
        events = int(out)
        size = 0
    return {
        "seconds": seconds,
        "events_per_s": events / seconds,
        "peak_pss_mb": pss / 1e6,
        "peak_rss_mb": rss / 1e6,
        "bytes_per_event": size / events if size else 0.0,
        "events": events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=HERE / "out")
    parser.add_argument(
        "--only", choices=["kubetrail", "duckdb-native", "json.loads"], action="append"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = ensure_data(args.workdir, args.events, args.seed)
    methods = args.only or ["kubetrail", "duckdb-native", "json.loads"]
    results: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    for run in range(args.runs):
        for method in methods:  # interleaved, so load changes hit every method alike
            result = measure(method, data, args.workdir, sample_memory=False)
            results[method].append(result)
            print(
                f"run {run + 1} {method}: {result['events_per_s']:,.0f} events/s", file=sys.stderr
            )
    memory: dict[str, dict[str, float]] = {}
    for method in methods:
        memory[method] = measure(method, data, args.workdir, sample_memory=True)
        print(
            f"memory run {method}: peak {memory[method]['peak_pss_mb']:.0f} MB PSS, "
            f"{memory[method]['peak_rss_mb']:.0f} MB RSS "
            f"({memory[method]['events_per_s']:,.0f} events/s while sampled)",
            file=sys.stderr,
        )
    medians = {
        m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in results.items()
    }
    for method, m in medians.items():
        m["peak_pss_mb"] = memory[method]["peak_pss_mb"]
        m["peak_rss_mb"] = memory[method]["peak_rss_mb"]
    size_mb = data.stat().st_size / 1e6
    print(
        f"\nfile: {data.name}, {args.events:,} events, {size_mb:,.0f} MB, "
        f"{data.stat().st_size / args.events:,.0f} bytes/event; medians of {args.runs} timed runs, "
        f"memory from one sampled run; {os.cpu_count()} cores\n"
    )
    print(
        "| method | events/s | vs duckdb-native | peak PSS (MB) | peak RSS sum (MB) "
        "| bytes on disk/event |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    ceiling = medians.get("duckdb-native", {}).get("events_per_s")
    for method, m in medians.items():
        ratio = f"{m['events_per_s'] / ceiling:.2f}" if ceiling else "-"
        disk = f"{m['bytes_per_event']:.0f}" if m["bytes_per_event"] else "-"
        print(
            f"| {method} | {m['events_per_s']:,.0f} | {ratio} | {m['peak_pss_mb']:,.0f} "
            f"| {m['peak_rss_mb']:,.0f} | {disk} |"
        )
    print("\n" + json.dumps({"medians": medians, "runs": results, "memory_runs": memory}, indent=1))


if __name__ == "__main__":
    main()
