"""Paths to the real audit data under tests/data, and a plain reader for it.

Imported by tests as ``from testdata import ...`` (``tests/`` is on ``sys.path`` through the
root conftest); a module of its own because several test folders have a ``conftest.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).parent / "data"
EVENTS = DATA / "events"
EVENT_FILES = sorted(EVENTS.glob("*.jsonl"))
PARTIAL_FILES = sorted((DATA / "events-partial").glob("*.jsonl"))
EDGE_FILES = sorted((DATA / "events-edge").glob("*.jsonl"))
EVENTLIST_FILE = DATA / "events-derived" / "eventlist-batches-from-audit2rbac-v1.jsonl"


def read_json_lines(path: Path) -> list[dict]:
    """The JSON objects of a file, one per non-blank line, decoded with the standard library."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
