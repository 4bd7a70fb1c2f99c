"""Paths to the real audit data under tests/data, and a plain reader for it.

Imported by tests as ``from testdata import ...`` (``tests/`` is on ``sys.path`` through the
root conftest); a module of its own because several test folders have a ``conftest.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
EVENTS = DATA / "events"
EVENT_FILES = sorted(EVENTS.glob("*.jsonl"))
PARTIAL_FILES = sorted((DATA / "events-partial").glob("*.jsonl"))
EDGE_FILES = sorted((DATA / "events-edge").glob("*.jsonl"))
EVENTLIST_FILE = DATA / "events-derived" / "eventlist-batches-from-audit2rbac-v1.jsonl"


def store_of_every_event() -> Any:
    """An in-memory embedded store holding every event of tests/data/events (cluster
    ``default``, real ingest)."""
    from kubetrail.pipeline import ingest_paths
    from kubetrail.store import open_store

    store = open_store(":memory:")
    ingest_paths(store, [str(p) for p in EVENT_FILES], "default")
    return store


def read_json_lines(path: Path) -> list[dict]:
    """The JSON objects of a file, one per non-blank line, decoded with the standard library."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ingest_quarantined(
    store: Any, paths: list[Path], quarantine_file: Path, **kwargs: Any
) -> tuple[Any, list[dict[str, Any]]]:
    """Ingest ``paths`` into ``store`` (cluster ``c1``) with a quarantine file.

    Returns:
        the ingest summary, and each quarantined record without the time it was written.
    """
    from kubetrail.pipeline import ingest_paths
    from kubetrail.quarantine import Quarantine

    quarantine = Quarantine(quarantine_file)
    try:
        summary = ingest_paths(
            store, [str(p) for p in paths], "c1", quarantine=quarantine, **kwargs
        )
    finally:
        quarantine.close()
    text = quarantine_file.read_text() if quarantine_file.exists() else ""
    entries = [
        {k: v for k, v in json.loads(line).items() if k != "time"} for line in text.splitlines()
    ]
    return summary, entries
