"""Shared fixtures: a fresh store per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kubetrail.store import DuckDBStore, open_store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.duckdb"


@pytest.fixture
def store(db_path: Path) -> Iterator[DuckDBStore]:
    s = open_store(db_path)
    yield s
    s.close()
