"""Fixtures for the query tests: one store holding every real event, and its rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kubetrail.store import DuckDBStore
from testdata import store_of_every_event


@pytest.fixture(scope="session")
def store() -> Iterator[DuckDBStore]:
    """A store with every event of tests/data/events (real ingest, cluster ``default``)."""
    db = store_of_every_event()
    yield db
    db.close()


@pytest.fixture(scope="session")
def rows(store: DuckDBStore) -> list[dict[str, Any]]:
    """Every stored row as a dict of columns, for the Python predicate."""
    return store.query("SELECT * FROM events").to_pylist()
