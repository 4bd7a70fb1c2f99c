"""Detection benchmark (issue 6), each figure against its baseline in the same run.

1. **Throughput.** The same demo file is ingested into a fresh store without detections and
   with the whole enabled rule pack (``ingest_paths(..., detector=...)``, what
   ``kubetrail ingest --detect`` runs), interleaved, ``--runs`` times each; medians. The ratio
   is with/without. The engine's own speed is measured apart, on ingest-sized batches
   already decoded in memory (scan + storing alerts, nothing else running), so that it is not
   mixed up with the ingest threads it overlaps with.
2. **Latency.** ``kubetrail serve`` (a child process) with an Alertmanager sink, and a real
   Alertmanager; each trial POSTs one EventList holding one ``pods/exec`` event (a new pod
   name each time, so each raises a new alert) and polls Alertmanager's ``/api/v2/alerts`` every
   5 ms until the alert is there. p50/p99 of POST-to-receipt over ``--trials``.

Usage::

    python bench/detect_bench.py --events 1000000 --runs 3 --trials 200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from ingest_bench import ensure_data
from kubetrail.detect.detector import Detector
from kubetrail.detect.loader import load_ruleset
from kubetrail.pipeline import BATCH_RECORDS, ingest_paths
from kubetrail.store import INGEST_SETTINGS, open_store


class _TimedDetector:
    """The detector, timing each batch it looks at."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.seconds = 0.0
        self.events = 0
        self.alerts = 0

    def on_batch(self, table) -> None:
        started = time.perf_counter()
        self.alerts += len(self.detector.on_batch(table))
        self.seconds += time.perf_counter() - started
        self.events += table.num_rows


def _ingest(path: Path, work: Path, detect: bool) -> dict[str, float]:
    db = work / f"bench-{'detect' if detect else 'plain'}.duckdb"
    for leftover in work.glob(db.name + "*"):
        leftover.unlink()
    store = open_store(db, **INGEST_SETTINGS)
    timed = None
    if detect:
        timed = _TimedDetector(Detector(store, load_ruleset().rules))
    started = time.perf_counter()
    summary = ingest_paths(store, [path], "bench", detector=timed)
    seconds = time.perf_counter() - started
    store.close()
    result = {"seconds": seconds, "events_per_s": summary.read / seconds}
    if timed is not None:
        timed.detector.close()
        result |= {
            "detect_seconds": timed.seconds,
            "engine_events_per_s": timed.events / timed.seconds if timed.seconds else 0.0,
            "alerts": timed.alerts,
        }
    for leftover in work.glob(db.name + "*"):
        leftover.unlink()
    return result


def engine_alone(path: Path, batches: int = 8) -> float:
    """Events per second through the detector alone (batches decoded beforehand)."""
    from itertools import islice

    from kubetrail.model.normalize import normalize_records
    from kubetrail.sources.files import iter_records

    records = iter_records(path)
    tables = []
    for _ in range(batches):
        chunk = list(islice(records, BATCH_RECORDS))
        if not chunk:
            break
        tables.append(normalize_records(chunk, cluster="bench", source="b", batch_id="b").table)
    store = open_store(":memory:")
    detector = Detector(store, load_ruleset().rules)
    detector.on_batch(tables[0].slice(0, 10))  # prepares the statement (once per engine)
    started = time.perf_counter()
    for table in tables:
        detector.on_batch(table)
    seconds = time.perf_counter() - started
    detector.close()
    store.close()
    return sum(t.num_rows for t in tables) / seconds


def throughput(path: Path, work: Path, runs: int) -> None:
    plain, detect = [], []
    for run in range(runs):
        plain.append(_ingest(path, work, detect=False))
        detect.append(_ingest(path, work, detect=True))
        print(
            f"run {run + 1}: without {plain[-1]['events_per_s']:,.0f}/s, "
            f"with {detect[-1]['events_per_s']:,.0f}/s, alerts {detect[-1]['alerts']}",
            flush=True,
        )
    p = statistics.median(r["events_per_s"] for r in plain)
    d = statistics.median(r["events_per_s"] for r in detect)
    engine = statistics.median(engine_alone(path) for _ in range(runs))
    print("\n| ingest | events/s (median) | vs without |\n|---|---:|---:|")
    print(f"| without detections | {p:,.0f} | 1.00 |")
    print(f"| with the rule pack | {d:,.0f} | {d / p:.2f} |")
    print(
        f"\nengine alone (scan + store alerts, {BATCH_RECORDS:,}-event batches): "
        f"{engine:,.0f} events/s; "
        f"cost of detections: {100 * (1 - d / p):.0f} % of ingest throughput"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{what} did not start")


def _exec_event(name: str) -> dict:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"bench-{name}",
        "stage": "ResponseComplete",
        "verb": "create",
        "requestURI": f"/api/v1/namespaces/bench/pods/{name}/exec?command=id&stdout=true",
        "user": {"username": "alice@example.com", "groups": ["system:authenticated"]},
        "sourceIPs": ["203.0.113.7"],
        "userAgent": "kubectl/v1.30.2",
        "objectRef": {
            "resource": "pods",
            "namespace": "bench",
            "name": name,
            "subresource": "exec",
            "apiVersion": "v1",
        },
        "responseStatus": {"code": 101},
        "requestReceivedTimestamp": now,
        "stageTimestamp": now,
    }


def latency(work: Path, trials: int) -> None:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        raise SystemExit("prometheus-alertmanager is not installed")
    am_port, kt_port = _free_port(), _free_port()
    (work / "am.yml").write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    am = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'am.yml'}",
            f"--storage.path={work / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    am_url = f"http://127.0.0.1:{am_port}"
    config = work / "kubetrail.yaml"
    config.write_text(
        json.dumps(
            {
                "server": {"db": str(work / "latency.duckdb"), "listen": f"127.0.0.1:{kt_port}"},
                "detect": {
                    "sinks": [{"type": "alertmanager", "url": am_url}],
                    "schedule_seconds": 3600,
                },
            }
        )
    )
    token = "bench-token-0123456789"
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubetrail",
            "serve",
            "--config",
            str(config),
            "--cluster-token",
            f"bench={token}",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    kt_url = f"http://127.0.0.1:{kt_port}"
    samples: list[float] = []
    try:
        _wait(f"{am_url}/-/ready", am, "alertmanager")
        _wait(f"{kt_url}/readyz", serve, "kubetrail serve")
        with httpx.Client(timeout=10) as client:
            for i in range(trials + 3):
                name = f"web-{i}-{time.monotonic_ns()}"
                body = {
                    "kind": "EventList",
                    "apiVersion": "audit.k8s.io/v1",
                    "items": [_exec_event(name)],
                }
                started = time.perf_counter()
                answer = client.post(
                    f"{kt_url}/ingest/v1/events",
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                )
                answer.raise_for_status()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    alerts = client.get(f"{am_url}/api/v2/alerts").json()
                    if any(name in a["annotations"].get("description", "") for a in alerts):
                        break
                    time.sleep(0.005)
                else:
                    raise SystemExit(f"alert for {name} never reached Alertmanager")
                if i >= 3:  # the first requests warm up the engine's prepared statement
                    samples.append(time.perf_counter() - started)
    finally:
        for proc in (serve, am):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    print(
        f"\nwebhook POST -> Alertmanager receipt over {len(samples)} alerts: "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {samples[-1] * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument(
        "--file", type=Path, help="Demo file to use [default: one generated for this run]."
    )
    parser.add_argument("--only", choices=["throughput", "latency"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubetrail-detect-bench-") as tmp:
        work = Path(tmp)
        if args.only != "latency":
            path = args.file or ensure_data(work, args.events, seed=6)
            throughput(path, work, args.runs)
        if args.only != "throughput":
            latency(work, args.trials)


if __name__ == "__main__":
    main()
