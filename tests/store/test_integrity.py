"""The hash chain and ``verify``: passes on an untouched store, names the batch on each tamper."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from kubetrail.errors import StoreError
from kubetrail.model import decode_records, normalize
from kubetrail.pipeline import ingest_paths
from kubetrail.store import BatchMeta, DuckDBStore, open_store
from kubetrail.store.integrity import GENESIS, ChainRecord, events_digest
from kubetrail.store.retention import RetentionPolicy, apply_retention
from kubetrail.store.verify import verify_store
from testdata import EVENTS
from trail import PER_DAY, START, fill


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    """A store with two clusters of five daily batches each."""
    path = tmp_path / "trail.duckdb"
    with open_store(path) as store:
        fill(store, tmp_path / "in", "prod", START, 5)
        fill(store, tmp_path / "in", "dev", START, 5)
    return path


def _sql(path: Path, sql: str, params: list | None = None) -> list:
    con = duckdb.connect(str(path))
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _verify(path: Path, **kwargs):
    with open_store(path, read_only=True) as store:
        return verify_store(store, **kwargs)


def _batches(path: Path, cluster: str) -> list[str]:
    rows = _sql(path, "SELECT batch_id FROM chain WHERE cluster = ? ORDER BY seq", [cluster])
    return [r[0] for r in rows]


def _kinds(report) -> set[tuple[str, str | None]]:
    return {(p.kind, p.batch_id) for p in report.problems}


def test_untouched_store_verifies(filled: Path) -> None:
    report = _verify(filled)
    assert report.ok, report.problems
    assert set(report.clusters) == {"dev", "prod"}
    prod = report.clusters["prod"]
    assert (prod.records, prod.batches, prod.events) == (5, 5, 5 * PER_DAY)
    rows = _sql(
        filled, "SELECT seq, prev_hash, record_hash FROM chain WHERE cluster='prod' ORDER BY seq"
    )
    assert [r[0] for r in rows] == list(range(5))
    assert rows[0][1] == GENESIS
    assert all(rows[i][1] == rows[i - 1][2] for i in range(1, 5))


def test_altered_event_field_is_found_with_its_batch(filled: Path) -> None:
    target = _batches(filled, "prod")[2]
    changed = _sql(
        filled,
        "UPDATE events SET raw = replace(raw, 'bob', 'eve') WHERE audit_id = "
        "(SELECT min(audit_id) FROM events WHERE batch_id = ? AND raw LIKE '%bob%')",
        [target],
    )
    assert changed == [(1,)]
    report = _verify(filled)
    assert not report.ok
    assert _kinds(report) == {("events_changed", target)}
    problem = report.problems[0]
    assert problem.cluster == "prod" and problem.seq == 2
    assert problem.first_time.date() == (START + timedelta(days=2)).date()


def test_deleted_event_is_found(filled: Path) -> None:
    target = _batches(filled, "dev")[1]
    _sql(
        filled,
        "DELETE FROM events WHERE audit_id = (SELECT min(audit_id) FROM events WHERE batch_id = ?)",
        [target],
    )
    report = _verify(filled)
    assert _kinds(report) == {("events_removed", target)}


def test_event_inserted_into_a_batch_or_outside_the_chain_is_found(filled: Path) -> None:
    target = _batches(filled, "prod")[0]
    copy = (
        "INSERT INTO events SELECT * REPLACE (audit_id || '-x' AS audit_id{b}) FROM events "
        "WHERE batch_id = ? LIMIT 1"
    )
    _sql(filled, copy.format(b=""), [target])
    report = _verify(filled)
    assert _kinds(report) == {("events_inserted", target)}
    _sql(filled, "DELETE FROM events WHERE audit_id LIKE '%-x'")
    assert _verify(filled).ok
    _sql(filled, copy.format(b=", 'forged' AS batch_id"), [target])
    assert _kinds(_verify(filled)) == {("events_outside_chain", "forged")}


def test_removed_batch_record_is_found(filled: Path) -> None:
    target = _batches(filled, "prod")[3]
    _sql(filled, "DELETE FROM chain WHERE batch_id = ?", [target])
    kinds = _kinds(_verify(filled))
    # The events of the batch no longer have a record, and the chain has a hole at seq 3.
    assert ("events_outside_chain", target) in kinds
    assert {k for k, _ in kinds} >= {"record_missing", "chain_broken"}


def test_altered_chain_record_is_found(filled: Path) -> None:
    target = _batches(filled, "dev")[4]
    _sql(filled, "UPDATE chain SET events = events - 1 WHERE batch_id = ?", [target])
    kinds = _kinds(_verify(filled))
    assert ("record_altered", target) in kinds


def test_forged_retention_records_are_found(filled: Path) -> None:
    now = START + timedelta(days=10)
    with open_store(filled) as store:
        apply_retention(store, RetentionPolicy(timedelta(days=8)), now=now)
        assert verify_store(store).ok
    # 1. Widen a real retention record to cover a young batch, and delete that batch.
    young = _batches(filled, "prod")[4]
    _sql(filled, "DELETE FROM events WHERE batch_id = ?", [young])
    detail = _sql(filled, "SELECT detail FROM chain WHERE cluster='prod' AND kind='retention'")
    widened = json.loads(detail[0][0])
    widened["removed_batches"].append(young)
    _sql(
        filled,
        "UPDATE chain SET detail = ? WHERE cluster='prod' AND kind='retention'",
        [json.dumps(widened)],
    )
    report = _verify(filled)
    assert ("record_altered", None) in _kinds(report)
    assert ("events_removed", young) in _kinds(report)


def test_retention_record_forged_with_valid_hashes_is_found(filled: Path) -> None:
    """Someone who recomputes the hashes still cannot remove young events through retention."""
    with open_store(filled) as store:
        young = [r for r in store.chain_records("dev") if r.kind == "batch"][-1]
        at = datetime.now(UTC).replace(tzinfo=None)
        # A "retention" record whose cutoff lies after the batch: not older than retention.
        store.remove_batches(
            "dev",
            [young.batch_id],
            kind="retention",
            detail={"cutoff": (young.first_time).isoformat() + "Z", "actor": "mallory"},
        )
        report = verify_store(store)
        assert ("removal_invalid", young.batch_id) in _kinds(report)
        # A cutoff after the batch, but checked against the configured retention (30 days).
        store.remove_batches("dev", [], kind="retention", detail={"cutoff": at.isoformat() + "Z"})
        policy = RetentionPolicy(timedelta(days=30))
        kinds = {k for k, _ in _kinds(verify_store(store, policy=policy))}
        assert "removal_invalid" in kinds


def test_duplicates_are_outside_the_digest(store: DuckDBStore, tmp_path: Path) -> None:
    """A batch that repeats stored events records and hashes only what it stored."""
    fill(store, tmp_path / "a", "c", START, 2)
    fill(store, tmp_path / "a", "c", START + timedelta(days=1), 2)  # day 2 again, then day 3
    records = store.chain_records("c")
    assert [r.events for r in records] == [PER_DAY, PER_DAY, PER_DAY]
    assert verify_store(store).ok


def test_write_group_chains_each_batch(store: DuckDBStore) -> None:
    lines = list(enumerate((EVENTS / "falco-k8s-audit-traces.jsonl").read_bytes().splitlines(), 1))
    table = normalize(decode_records(lines, "t"), cluster="w", source="t", batch_id="").table
    half = table.num_rows // 2
    first, second = table.slice(0, half), table.slice(half)
    store.write_group([(first, BatchMeta("w", "t", "g1")), (second, BatchMeta("w", "t", "g2"))])
    assert [r.batch_id for r in store.chain_records("w")] == ["g1", "g2"]
    assert verify_store(store).ok


def test_digest_is_canonical() -> None:
    """Order-independent, framed by lengths, and changed by any byte."""
    t = datetime(2026, 1, 1)
    table = pa.table(
        {
            "request_received": pa.array([t, t, t + timedelta(seconds=1)], pa.timestamp("us")),
            "audit_id": ["b", "a", "a"],
            "stage": ["ResponseComplete"] * 3,
            "raw": ['{"x":1}', '{"y":2}', '{"z":3}'],
        }
    )
    reversed_ = table.take([2, 1, 0])
    assert events_digest([table]) == events_digest([reversed_.slice(0, 1), reversed_.slice(1)])
    moved = table.set_column(3, "raw", pa.array(['{"x":1}{', '"y":2}', '{"z":3}']))
    assert events_digest([moved]) != events_digest([table])
    assert events_digest([]) == events_digest([table.slice(0, 0)])


def test_record_hash_covers_every_field() -> None:
    record = ChainRecord("c", 0, "batch", "b", 3, None, None, "00", {"k": 1}).sealed()
    assert record.computed_hash() == record.record_hash
    for change in ({"events": 4}, {"detail": {"k": 2}}, {"prev_hash": "1" * 64}, {"seq": 1}):
        from dataclasses import replace

        assert replace(record, **change).computed_hash() != record.record_hash


def test_store_without_chain_reports_unchained_events(tmp_path: Path) -> None:
    path = tmp_path / "nochain.duckdb"
    store = DuckDBStore(path, chain=False)
    ingest_paths(store, [EVENTS / "audit2rbac-demo-v1.jsonl"], cluster="old")
    store.close()
    report = _verify(path)
    assert {k for k, _ in _kinds(report)} == {"events_outside_chain"}


def test_duplicate_across_chunks_of_one_batch(store: DuckDBStore, tmp_path: Path) -> None:
    """A line repeated later in the same file (another chunk, same batch) is stored once."""
    lines = (EVENTS / "audit2rbac-demo-v1.jsonl").read_bytes().splitlines()
    path = tmp_path / "repeat.jsonl"
    path.write_bytes(b"\n".join([*lines, lines[3], lines[0]]) + b"\n")
    summary = ingest_paths(store, [path], cluster="r", chunk_records=8, batch_records=1000)
    assert summary.duplicates == 2
    (record,) = store.chain_records("r")
    assert record.events == len(lines) == store.count("r")
    assert verify_store(store).ok


def test_a_rolled_back_group_leaves_the_chain_as_it_was(store: DuckDBStore) -> None:
    lines = list(enumerate((EVENTS / "falco-k8s-audit-traces.jsonl").read_bytes().splitlines(), 1))
    table = normalize(decode_records(lines, "t"), cluster="w", source="t", batch_id="").table
    bad = table.drop_columns(["raw"])
    with pytest.raises(StoreError):
        store.write_group([(table, BatchMeta("w", "t", "ok")), (bad, BatchMeta("w", "t", "bad"))])
    assert store.chain_records("w") == [] and store.count() == 0
    store.write_batch(table, BatchMeta("w", "t", "again"))
    assert [(r.seq, r.batch_id) for r in store.chain_records("w")] == [(0, "again")]
    assert verify_store(store).ok


def _reference_digest(rows: list[dict]) -> str:
    """The canonical bytes of docs/retention-and-integrity.md, built the plain way."""
    import hashlib

    ordered = sorted(rows, key=lambda r: (r["request_received"], r["audit_id"], r["stage"]))
    data = [r["raw"].encode() for r in ordered]
    lengths = b"".join(len(d).to_bytes(4, "big") for d in data)
    body = b"kubetrail-events-v1\n" + len(data).to_bytes(8, "big") + lengths + b"".join(data)
    return hashlib.sha256(body).hexdigest()


def test_digest_matches_the_documented_canonical_bytes(filled: Path) -> None:
    with open_store(filled, read_only=True) as store:
        table = store.query(
            "SELECT request_received, audit_id, stage, raw FROM events WHERE cluster = 'prod'"
        )
    rows = table.to_pylist()
    expected = _reference_digest(rows)
    assert events_digest([table]) == expected
    # However the rows are split and ordered, and over chunk boundaries.
    shuffled = table.take(list(range(1, table.num_rows, 2)) + list(range(0, table.num_rows, 2)))
    parts = [shuffled.slice(i, 7) for i in range(0, shuffled.num_rows, 7)]
    assert events_digest(parts) == expected
    assert events_digest([pa.concat_tables(parts)]) == expected


def test_forged_eviction_of_recent_batches_is_found(filled: Path) -> None:
    """An "eviction" that takes the newest batch and keeps older ones is not a size cap's."""
    with open_store(filled) as store:
        newest = [r for r in store.chain_records("prod") if r.kind == "batch"][-1]
        store.remove_batches("prod", [newest.batch_id], kind="eviction", detail={"max_size": 1})
        policy = RetentionPolicy(max_size=1)
        problems = verify_store(store, policy=policy).problems
    assert [(p.kind, p.batch_id) for p in problems] == [("removal_invalid", newest.batch_id)]
    assert "kept the older batch" in problems[0].detail


def test_deep_verify_catches_an_extracted_column_edited_alone(filled: Path) -> None:
    assert _verify(filled, deep=True).ok
    target = _batches(filled, "dev")[2]
    _sql(
        filled,
        "UPDATE events SET username = 'nobody' WHERE batch_id = ? AND username = 'system:admin'",
        [target],
    )
    assert _verify(filled).ok  # the hash covers the stored JSON, which is intact
    report = _verify(filled, deep=True)
    assert [(p.kind, p.batch_id) for p in report.problems] == [("columns_changed", target)]
    assert "username" in report.problems[0].detail
