"""Shared fixtures: paths to the real audit data, and a fresh store per test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubetrail.store import DuckDBStore, open_store

DATA = Path(__file__).parent / "data"
EVENTS = DATA / "events"
EVENT_FILES = sorted(EVENTS.glob("*.jsonl"))
PARTIAL_FILES = sorted((DATA / "events-partial").glob("*.jsonl"))
EDGE_FILES = sorted((DATA / "events-edge").glob("*.jsonl"))
EVENTLIST_FILE = DATA / "events-derived" / "eventlist-batches-from-audit2rbac-v1.jsonl"


def read_json_lines(path: Path) -> list[dict]:
    """The JSON objects of a file, one per non-blank line, decoded with the standard library."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.duckdb"


@pytest.fixture
def store(db_path: Path) -> Iterator[DuckDBStore]:
    s = open_store(db_path)
    yield s
    s.close()
