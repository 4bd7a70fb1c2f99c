"""Fixtures for the query tests: one store holding every real event, and its rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubetrail.pipeline import ingest_paths
from kubetrail.store import DuckDBStore, open_store

EVENTS = Path(__file__).parents[1] / "data" / "events"
EVENT_FILES = sorted(EVENTS.glob("*.jsonl"))


@pytest.fixture(scope="session")
def store() -> Iterator[DuckDBStore]:
    """A store with every event of tests/data/events (real ingest, cluster ``default``)."""
    db = open_store(":memory:")
    ingest_paths(db, [str(p) for p in EVENT_FILES], "default")
    yield db
    db.close()


@pytest.fixture(scope="session")
def rows(store: DuckDBStore) -> list[dict[str, Any]]:
    """Every stored row as a dict of columns, for the Python predicate."""
    return store.query("SELECT * FROM events").to_pylist()
