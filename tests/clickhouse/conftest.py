"""Fixtures of the ClickHouse tests: one real server per session, a fresh database per use.

The server comes from the PyPI package ``chdb-core`` (a test dependency): see
``tests/clickhouse_server.py``. Without it every test here is skipped.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from clickhouse_server import ClickHouseServer
from kubetrail.store import DuckDBStore
from kubetrail.store.clickhouse import ClickHouseStore
from testdata import EVENT_FILES, store_of_every_event

#: Every test module here starts with ``pytest.importorskip("chdb", reason=...)`` (a skip in a
#: conftest would be an error, not a skip).
CHDB_MISSING = "chdb-core (a test dependency) runs the ClickHouse server"


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    """A ClickHouse 26 server on 127.0.0.1 for the whole session, always stopped at the end."""
    pytest.importorskip("chdb", reason=CHDB_MISSING)
    server = ClickHouseServer(tmp_path_factory.mktemp("clickhouse"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def clickhouse_url(clickhouse_server: ClickHouseServer) -> str:
    return clickhouse_server.url


StoreFactory = Callable[..., ClickHouseStore]


@pytest.fixture
def new_clickhouse_store(clickhouse_url: str) -> Iterator[StoreFactory]:
    """Opens stores in databases of their own (dropped afterwards)."""
    opened: list[ClickHouseStore] = []

    def make(**kwargs: object) -> ClickHouseStore:
        database = kwargs.pop("database", None) or f"kt_{uuid.uuid4().hex[:12]}"
        store = ClickHouseStore(clickhouse_url, database=str(database), **kwargs)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield make
    if opened:
        opened[0]._client.database = "default"  # the session's database is about to go
    for database in dict.fromkeys(store.database for store in opened):
        opened[0]._client.command(f"DROP DATABASE IF EXISTS {database}")
    for store in opened:
        store.close()


@pytest.fixture(scope="session")
def store(clickhouse_url: str) -> Iterator[ClickHouseStore]:
    """ClickHouse holding every event of tests/data/events (real ingest, cluster ``default``).

    The same name as the query suite's DuckDB fixture, so that its tests run here unchanged.
    """
    from kubetrail.pipeline import ingest_paths

    db = ClickHouseStore(clickhouse_url, database="kt_query_suite")
    ingest_paths(db, [str(p) for p in EVENT_FILES], "default")
    yield db
    db.close()


@pytest.fixture(scope="session")
def rows(store: ClickHouseStore) -> list[dict[str, Any]]:
    """Every stored row as a dict of columns, for the Python predicate."""
    return store.query("SELECT * FROM events").to_pylist()


@pytest.fixture(scope="session")
def duckdb_store() -> Iterator[DuckDBStore]:
    """The embedded store holding the same events as ``store``, to compare answers with."""
    db = store_of_every_event()
    yield db
    db.close()
