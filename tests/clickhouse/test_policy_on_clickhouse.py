"""Policy simulation in the store (``kubetrail.policy.dbsim``) on ClickHouse, against DuckDB:
what runs on ClickHouse must give the embedded store's answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kubetrail.store import DuckDBStore
from kubetrail.store.clickhouse import ClickHouseStore

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")
dbsim = pytest.importorskip("kubetrail.policy.dbsim")
policy_module = pytest.importorskip("kubetrail.policy")

POLICIES = sorted((Path(__file__).parents[1] / "data" / "policies").glob("*.yaml"))[:3]


@pytest.fixture(scope="module")
def duckdb_store() -> Iterator[DuckDBStore]:
    from kubetrail.pipeline import ingest_paths
    from kubetrail.store import open_store

    db = open_store(":memory:")
    files = sorted((Path(__file__).parents[1] / "data" / "events").glob("*.jsonl"))
    ingest_paths(db, [str(p) for p in files], "default")
    yield db
    db.close()


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_per_event_levels_agree(
    path: Path, store: ClickHouseStore, duckdb_store: DuckDBStore
) -> None:
    policy = policy_module.load_policy_file(path)
    ours = sorted(map(repr, dbsim.per_event_store(store, policy)))
    assert ours == sorted(map(repr, dbsim.per_event_store(duckdb_store, policy)))


def test_requests_and_events_agree(store: ClickHouseStore, duckdb_store: DuckDBStore) -> None:
    assert dbsim.request_counts_store(store) == dbsim.request_counts_store(duckdb_store)
    audit_id = "9ac5187c-29a2-4bf8-ba6e-21dc887f5d34"
    assert dbsim.fetch_event(store, audit_id) == dbsim.fetch_event(duckdb_store, audit_id)


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_tally_agrees(path: Path, store: ClickHouseStore, duckdb_store: DuckDBStore) -> None:
    """Counts, byte sizes (ClickHouse's length() against DuckDB's strlen()) and time range."""
    policy = policy_module.load_policy_file(path)
    ours, theirs = dbsim.tally_store(store, policy), dbsim.tally_store(duckdb_store, policy)
    assert dict(ours.cells) == dict(theirs.cells)
    assert sum(c.bytes for c in ours.cells.values()) > 0
    assert (ours.first, ours.last) == (theirs.first, theirs.last)
