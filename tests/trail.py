"""Stores with a known history for the chain and retention tests.

The events are the real ones of ``tests/data/events/audit2rbac-demo-v1.jsonl`` (see
``tests/data/README.md``), moved to chosen days with fresh auditIDs, one file (and so one
batch) per day.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from kubetrail.pipeline import ingest_paths
from kubetrail.store import DuckDBStore
from testdata import EVENTS, read_json_lines

TEMPLATES = read_json_lines(EVENTS / "audit2rbac-demo-v1.jsonl")
PER_DAY = len(TEMPLATES)
#: The first day of the stores these tests build.
START = datetime(2026, 3, 1)


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def day_file(folder: Path, cluster: str, day: datetime) -> Path:
    """A file of the template events, all on ``day`` (one second apart), with new auditIDs."""
    lines = []
    for i, template in enumerate(TEMPLATES):
        event = dict(template)
        when = day + timedelta(seconds=i)
        event["auditID"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{cluster}/{day}/{i}"))
        event["requestReceivedTimestamp"] = _stamp(when)
        event["stageTimestamp"] = _stamp(when + timedelta(milliseconds=5))
        event.pop("timestamp", None)
        lines.append(json.dumps(event))
    path = folder / f"{cluster}-{day:%Y%m%d}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def fill(store: DuckDBStore, folder: Path, cluster: str, start: datetime, days: int) -> None:
    """Store ``days`` days of events of ``cluster`` from ``start``, one batch per day."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [day_file(folder, cluster, start + timedelta(days=d)) for d in range(days)]
    ingest_paths(store, files, cluster=cluster)
