"""``kubetrail collect`` on a glob of container logs, to a live server: events and /metrics."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from live import AUTH, PATH, PROD_TOKEN, assert_error, cluster_metric, wait_for

from containerlogs import PodLogs, Wrapper
from testdata import EVENT_FILES

EVENTS = [line for p in EVENT_FILES for line in p.read_bytes().splitlines() if line.strip()]


NOT_AUDIT = "kubetrail_ingest_lines_not_audit_total"


def test_collect_container_logs_across_rotation_and_pod_restart(
    start_server: Any, tmp_path: Path
) -> None:
    live = start_server()
    logs = PodLogs(tmp_path, Wrapper("cri", split=400), EVENTS[:200])
    logs.write(50)
    args = ["--file", logs.glob, "--server", live.url, "--token", PROD_TOKEN]
    args += ["--checkpoint", str(tmp_path / "ckpt.json"), "--poll", "0.05"]
    with open(tmp_path / "collect.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kubetrail", "collect", *args], stdout=out, stderr=out
        )
    try:
        stored = "kubetrail_ingest_events_received_total"
        wait_for(lambda: cluster_metric(live.url, stored) >= 50)
        logs.write(30)
        logs.rotate()
        logs.write(20)
        logs.restart()
        logs.write(25)
        wait_for(lambda: cluster_metric(live.url, stored) >= 125)
        wait_for(lambda: cluster_metric(live.url, NOT_AUDIT) >= logs.noise)
        assert cluster_metric(live.url, NOT_AUDIT) == logs.noise
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    assert cluster_metric(live.url, stored) == 125
    assert "skipped" in (tmp_path / "collect.log").read_text()


def test_a_bad_not_audit_header_is_refused(start_server: Any) -> None:
    live = start_server()
    headers = {**AUTH, "Content-Type": "application/x-ndjson", "X-Kubetrail-Not-Audit": "-3"}
    response = httpx.post(live.url + PATH, content=EVENTS[0], headers=headers)
    assert_error(response, 400)
    headers["X-Kubetrail-Not-Audit"] = "4"
    response = httpx.post(live.url + PATH, content=EVENTS[0], headers=headers)
    assert response.status_code == 200
    assert cluster_metric(live.url, NOT_AUDIT) == 4
