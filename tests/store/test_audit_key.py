"""Lookups by auditID through ``audit_key``: derived at ingest, upgraded into old stores, and
used by ``id=`` queries without changing their answers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from kubetrail.errors import StoreError
from kubetrail.model.derive import audit_key
from kubetrail.pipeline import ingest_paths
from kubetrail.query import run_query
from kubetrail.store import open_store
from testdata import EVENT_FILES


def test_key_is_the_md5_prefix() -> None:
    digest = hashlib.md5(b"9ac5187c-29a2-4bf8-ba6e-21dc887f5d34").digest()
    assert audit_key("9ac5187c-29a2-4bf8-ba6e-21dc887f5d34") == int.from_bytes(digest[:8], "little")
    assert 0 <= audit_key("") < 2**64


def test_every_stored_event_has_its_key(tmp_path: Path) -> None:
    with open_store(tmp_path / "k.duckdb") as store:
        ingest_paths(store, [str(p) for p in EVENT_FILES], "default")
        rows = store.query("SELECT audit_id, audit_key FROM events").to_pylist()
    assert rows and all(r["audit_key"] == audit_key(r["audit_id"]) for r in rows)


def test_duckdb_md5_number_upper_matches(tmp_path: Path) -> None:
    """The version-1 upgrade computes the key in SQL; it must be the same number."""
    with open_store(tmp_path / "k.duckdb") as store:
        ingest_paths(store, [str(p) for p in EVENT_FILES], "default")
        rows = store.query(
            "SELECT audit_key, md5_number_upper(audit_id) AS sql_key FROM events"
        ).to_pylist()
    assert all(r["audit_key"] == r["sql_key"] for r in rows)


def _downgrade_to_version_1(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE events DROP COLUMN audit_key")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()


def test_a_version_1_store_is_upgraded_when_opened_for_writing(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with open_store(path) as store:
        ingest_paths(store, [str(p) for p in EVENT_FILES], "default")
        before = store.count()
    _downgrade_to_version_1(path)
    with pytest.raises(StoreError, match=r"schema version 1.*store init --engine duckdb"):
        open_store(path, read_only=True)
    with open_store(path) as store:
        rows = store.query("SELECT audit_id, audit_key FROM events").to_pylist()
        assert len(rows) == before
        assert all(r["audit_key"] == audit_key(r["audit_id"]) for r in rows)
        # New events go in after the upgrade, and old ones are found by id.
        ingest_paths(store, [str(EVENT_FILES[0])], "other")
        some_id = rows[0]["audit_id"]
        found = run_query(store, f'id="{some_id}" stage=* | fields id, stage, cluster')
        assert found.table.num_rows >= 1
    with open_store(path, read_only=True) as store:
        assert store.query("SELECT value FROM meta").column(0)[0].as_py() == "2"


def test_id_queries_answer_as_before(tmp_path: Path) -> None:
    with open_store(tmp_path / "q.duckdb") as store:
        ingest_paths(store, [str(p) for p in EVENT_FILES], "default")
        ids = store.query("SELECT DISTINCT audit_id FROM events ORDER BY 1 LIMIT 3").column(0)
        a, b, c = (v.as_py() for v in ids)
        for text, wanted in [
            (f'id="{a}" stage=*', {a}),
            (f'id in ("{a}", "{b}") stage=*', {a, b}),
            (f'id in ("{a}", "{c[:8]}*") stage=*', {a, c}),
            (f'not id="{a}" stage=*', None),
        ]:
            result = run_query(store, f"{text} | fields id", limit=100_000)
            got = set(result.table.column(0).to_pylist())
            if wanted is None:
                assert a not in got and got
            else:
                assert wanted <= got
                plain = store.query(
                    "SELECT DISTINCT audit_id FROM events WHERE list_contains(?, audit_id) "
                    "OR audit_id LIKE ?",
                    [sorted(wanted - {c}) or [""], f"{c[:8]}%" if c in wanted else ""],
                ).column(0)
                assert got == set(plain.to_pylist())
