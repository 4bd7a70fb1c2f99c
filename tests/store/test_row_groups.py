"""The embedded store's row groups: kubetrail attaches its files with ROW_GROUP_ROWS.

An import's rows are compressed and written as each row group fills, instead of waiting
uncompressed (and, past the import's memory limit, spilled to a temporary file) until the
commit. The size is not kept in the file, so files written with DuckDB's default (older
kubetrail versions) must still be read and extended.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from kubetrail.demo.generate import generate_events
from kubetrail.pipeline import ingest_paths
from kubetrail.store import INGEST_SETTINGS
from kubetrail.store import duckdb as duckdb_store
from kubetrail.store.location import open_location
from kubetrail.store.verify import verify_store

pytestmark = pytest.mark.slow


def _write_events(path: Path, n: int, seed: int) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in generate_events(n, seed=seed)))
    return path


def _row_group_sizes(db: Path) -> list[int]:
    """Rows per row group of the events table, read with plain DuckDB (default settings)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT row_group_id, max(count) FROM pragma_storage_info('events') "
            "WHERE column_name = 'audit_id' GROUP BY row_group_id ORDER BY row_group_id"
        ).fetchall()
    finally:
        con.close()
    return [int(count) for _, count in rows]


def test_an_import_writes_row_groups_of_row_group_rows(tmp_path: Path) -> None:
    events = _write_events(tmp_path / "events.jsonl", 70_000, seed=5)
    db = tmp_path / "store.duckdb"
    store = open_location(db, duckdb_settings=INGEST_SETTINGS)
    try:
        summary = ingest_paths(store, [events])
        assert summary.stored == 70_000
        # DuckDB's temporary files go next to the store, not to the working directory.
        setting = store.query("SELECT current_setting('temp_directory') AS d").column(0)[0]
        assert setting.as_py() == f"{db}.tmp"
    finally:
        store.close()
    sizes = _row_group_sizes(db)
    assert sum(sizes) == 70_000
    assert max(sizes) == duckdb_store.ROW_GROUP_ROWS == 30_720
    assert sizes.count(30_720) == 2


def test_a_file_with_default_row_groups_is_read_and_extended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _write_events(tmp_path / "first.jsonl", 40_000, seed=6)
    second = _write_events(tmp_path / "second.jsonl", 40_000, seed=7)
    db = tmp_path / "store.duckdb"
    # An older kubetrail: DuckDB's default row group size.
    with monkeypatch.context() as patch:
        patch.setattr(duckdb_store, "ROW_GROUP_ROWS", 122_880)
        store = open_location(db, duckdb_settings=INGEST_SETTINGS)
        try:
            assert ingest_paths(store, [first]).stored == 40_000
        finally:
            store.close()
    assert _row_group_sizes(db) == [40_000]

    store = open_location(db, duckdb_settings=INGEST_SETTINGS)
    try:
        again = ingest_paths(store, [first, second])
        assert (again.stored, again.duplicates) == (40_000, 40_000)
    finally:
        store.close()
    store = open_location(db)
    try:
        exported = {
            (e["auditID"], e["stage"]) for e in (json.loads(line) for line in store.export())
        }
        assert len(exported) == 80_000
        assert verify_store(store).ok
    finally:
        store.close()
    sizes = _row_group_sizes(db)
    assert sum(sizes) == 80_000
    assert sizes[0] == 40_000 and max(sizes[1:]) <= 30_720


def test_a_cursor_of_its_own_reads_the_attached_store(tmp_path: Path) -> None:
    events = _write_events(tmp_path / "events.jsonl", 1_000, seed=8)
    store = open_location(tmp_path / "store.duckdb")
    try:
        ingest_paths(store, [events])
        cursor = store.cursor()  # type: ignore[attr-defined]
        try:
            assert cursor.execute("SELECT count(*) FROM events").fetchone() == (1_000,)
        finally:
            cursor.close()
    finally:
        store.close()
