"""The hash chain, ``verify`` and recorded retention on a real ClickHouse server.

Two :class:`ClickHouseStore` objects on one database stand for two stateless collectors: each
is a writer with chains of its own. The events are the real ones of ``tests/trail.py`` (the
audit2rbac demo, one batch per day, fresh auditIDs).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")

from kubetrail.model import decode_records, normalize
from kubetrail.store import BatchMeta
from kubetrail.store.clickhouse import ClickHouseStore
from kubetrail.store.clickhouse_chain import (
    StoredRecord,
    events_digest,
    insert,
    read_records,
    writer_of,
)
from kubetrail.store.clickhouse_retention import _usage
from kubetrail.store.integrity import GENESIS, ChainRecord
from kubetrail.store.retention import RetentionPolicy, apply_retention
from kubetrail.store.verify import verify_store
from trail import PER_DAY, START, day_file

DAYS = 6


def _table(path: Path, cluster: str, batch_id: str = "") -> pa.Table:
    lines = list(enumerate(path.read_bytes().splitlines(), 1))
    return normalize(decode_records(lines, path.name), cluster=cluster, source=path.name,
                     batch_id=batch_id).table  # fmt: skip


def _write(store: ClickHouseStore, path: Path, cluster: str) -> str:
    batch_id = uuid.uuid4().hex
    store.write_batch(_table(path, cluster, batch_id), BatchMeta(cluster, path.name, batch_id))
    return batch_id


@pytest.fixture
def two_writers(new_clickhouse_store: Any, tmp_path: Path) -> tuple[ClickHouseStore, ...]:
    """Two collectors on one database: days interleaved between them, for two clusters, and
    day 2 of ``prod`` written by both (the API server's retry reaching the other collector)."""
    a = new_clickhouse_store()
    b = new_clickhouse_store(database=a.database)
    for cluster in ("prod", "dev"):
        for day in range(DAYS):
            path = day_file(tmp_path, cluster, START + timedelta(days=day))
            _write(a if day % 2 == 0 else b, path, cluster)
            if cluster == "prod" and day == 2:
                _write(b, path, cluster)  # the retry: every event found stored already
    return a, b


def _kinds(report: Any) -> set[tuple[str, str | None]]:
    return {(p.kind, p.batch_id) for p in report.problems}


def _batch_ids(store: ClickHouseStore, cluster: str) -> list[str]:
    """Batch ids of a cluster's batch records, oldest events first."""
    records = [s.record for s in read_records(store, cluster) if s.record.kind == "batch"]
    return [str(r.batch_id) for r in sorted(records, key=lambda r: (r.first_time, r.at))]


def _sync(store: ClickHouseStore, sql: str, **params: Any) -> None:
    store._client.command(sql, parameters=params or None, settings={"mutations_sync": 2})


def test_two_writers_verify_with_one_chain_each(two_writers: tuple[ClickHouseStore, ...]) -> None:
    a, b = two_writers
    report = verify_store(a)
    assert report.ok, report.problems
    prod = report.clusters["prod"]
    assert (prod.events, prod.batches, prod.records) == (DAYS * PER_DAY, DAYS + 1, DAYS + 1)
    assert len(prod.heads) == 2  # one chain per writer
    for store in (a, b):
        chain = [s for s in read_records(a, "prod") if s.writer == writer_of(store).writer]
        assert [s.record.seq for s in chain] == list(range(len(chain)))
        assert chain[0].record.prev_hash == GENESIS
        assert all(chain[i].record.prev_hash == chain[i - 1].record.record_hash
                   for i in range(1, len(chain)))  # fmt: skip


def test_racing_copies_verify_whichever_survives_the_merge(
    new_clickhouse_store: Any, tmp_path: Path
) -> None:
    """Both collectors store a retried batch (the check-before-insert race); merges keep one."""
    a = new_clickhouse_store()
    b = new_clickhouse_store(database=a.database, exact_reads=True)
    path = day_file(tmp_path, "prod", START)
    table = _table(path, "prod")
    _write(a, path, "prod")
    # B's copy slipped past the check (it looked before A's INSERT was visible): same keys,
    # its own batch id, another part.
    copy = table.set_column(
        table.schema.get_field_index("batch_id"), "batch_id", pa.array(["b-copy"] * len(table))
    )
    b._client.insert_arrow("events", copy, database=b.database)
    _write(b, path, "prod")  # B's write then records the batch (all found stored)
    assert b.count("prod") == PER_DAY  # FINAL counts one copy before any merge
    assert a.count("prod") == 2 * PER_DAY  # the default reads (no FINAL) count both
    assert verify_store(a).ok  # verify reads with FINAL whatever the store's reads
    b.optimize()
    rows = b._client.query(f"SELECT count() FROM {b.database}.events", settings={"final": 0})
    assert rows.result_rows[0][0] == PER_DAY  # one copy left on disk
    report = verify_store(b)
    assert report.ok, report.problems
    assert report.clusters["prod"].batches == 2


def test_same_request_in_other_json_stays_with_the_batch_that_stored_it(
    new_clickhouse_store: Any,
) -> None:
    """The audit2rbac demo exported as v1 and as v1beta1: 37 events share their keys, with
    other JSON. The second batch stores none of them, so its record must not claim them."""
    from kubetrail.pipeline import ingest_paths

    events = Path(__file__).parents[1] / "data" / "events"
    store = new_clickhouse_store()
    first = ingest_paths(store, [str(events / "audit2rbac-demo-v1.jsonl")], "demo")
    second = ingest_paths(store, [str(events / "audit2rbac-demo-v1beta1-original.jsonl")], "demo")
    assert second.duplicates == 37 and second.stored == second.read - 37
    report = verify_store(store)
    assert report.ok, report.problems
    assert report.clusters["demo"].events == first.stored + second.stored
    # A retry of the first file (the same JSON) still chains what it finds stored.
    assert ingest_paths(store, [str(events / "audit2rbac-demo-v1.jsonl")], "demo").stored == 0
    assert verify_store(store).ok


def test_altered_event_is_found_with_its_batch(two_writers: tuple[ClickHouseStore, ...]) -> None:
    a, _ = two_writers
    target = _batch_ids(a, "dev")[3]
    _sync(
        a,
        f"ALTER TABLE {a.database}.events UPDATE raw = replace(raw, 'bob', 'eve') "
        "WHERE batch_id = {b:String} AND position(raw, 'bob') > 0",
        b=target,
    )
    assert _kinds(verify_store(a)) == {("events_changed", target)}


def test_deleted_event_is_found(two_writers: tuple[ClickHouseStore, ...]) -> None:
    a, _ = two_writers
    target = _batch_ids(a, "prod")[4]
    _sync(
        a,
        f"DELETE FROM {a.database}.events WHERE audit_id = (SELECT min(audit_id) FROM "
        f"{a.database}.events WHERE batch_id = {{b:String}})",
        b=target,
    )
    report = verify_store(a)
    assert _kinds(report) == {("events_removed", target)}
    assert f"holds {PER_DAY - 1} of the batch's {PER_DAY} event" in report.problems[0].detail


def test_event_inserted_outside_the_chain_is_found(
    two_writers: tuple[ClickHouseStore, ...],
) -> None:
    a, _ = two_writers
    target = _batch_ids(a, "prod")[1]
    # (A subquery: in ClickHouse the SELECT's aliases are visible in its own WHERE.)
    copy = (
        f"INSERT INTO {a.database}.events SELECT * REPLACE (concat(audit_id, '-x') AS audit_id"
        f"{{extra}}) FROM (SELECT * FROM {a.database}.events WHERE batch_id = {{{{b:String}}}} "
        "LIMIT 1)"
    )
    _sync(a, copy.format(extra=""), b=target)  # into a batch: its id, a new key
    assert _kinds(verify_store(a)) == {("events_outside_chain", target)}
    _sync(a, copy.format(extra=", 'forged' AS batch_id"), b=target)
    assert ("events_outside_chain", "forged") in _kinds(verify_store(a))


def test_removed_batch_record_is_found(two_writers: tuple[ClickHouseStore, ...]) -> None:
    a, _ = two_writers
    target = _batch_ids(a, "dev")[2]  # written by the first writer, in the middle of its chain
    _sync(a, f"DELETE FROM {a.database}.chain WHERE batch_id = {{b:String}}", b=target)
    kinds = _kinds(verify_store(a))
    assert ("events_outside_chain", target) in kinds
    assert {k for k, _ in kinds} >= {"record_missing", "chain_broken"}


def test_altered_record_is_found(two_writers: tuple[ClickHouseStore, ...]) -> None:
    a, _ = two_writers
    target = _batch_ids(a, "dev")[1]
    _sync(
        a,
        f"ALTER TABLE {a.database}.chain UPDATE events = events - 1 WHERE batch_id = {{b:String}}",
        b=target,
    )
    assert ("record_altered", target) in _kinds(verify_store(a))


def test_retention_per_cluster_with_a_fake_clock(two_writers: tuple[ClickHouseStore, ...]) -> None:
    a, b = two_writers
    now = START + timedelta(days=DAYS)  # events on days 0..5
    policy = RetentionPolicy(default=timedelta(days=4), clusters={"prod": timedelta(days=2)})
    before = {c: a.count(c) for c in ("prod", "dev")}
    dry = apply_retention(a, policy, now=now, dry_run=True)
    assert {c: a.count(c) for c in ("prod", "dev")} == before  # the dry run changed nothing
    assert not any(s.record.kind == "retention" for s in read_records(a, "prod"))
    report = apply_retention(b, policy, now=now)
    assert [r.as_dict() | {"chain_seq": None} for r in report.removals] == [
        r.as_dict() for r in dry.removals
    ]
    by_cluster = {r.cluster: r for r in report.removals}
    assert by_cluster["prod"].events == 4 * PER_DAY and len(by_cluster["prod"].batches) == 5
    assert by_cluster["dev"].events == 2 * PER_DAY and len(by_cluster["dev"].batches) == 2
    assert by_cluster["dev"].last_time < now - timedelta(days=4)
    assert a.count("prod") == 2 * PER_DAY and a.count("dev") == 4 * PER_DAY
    report = verify_store(a, policy=policy)
    assert report.ok, report.problems
    assert report.clusters["prod"].removed_events == 4 * PER_DAY
    # The records of removed batches stay, without their keys (dead weight once the events go).
    removed = set(by_cluster["prod"].batches)
    records = [s for s in read_records(a, "prod") if s.record.kind == "batch"]
    assert {s.record.batch_id for s in records} >= removed
    assert {s.record.batch_id for s in records if not s.keys} == removed
    assert apply_retention(a, policy, now=now).removals == []  # nothing more to remove
    a.optimize()  # merges after the deletes
    assert verify_store(a, policy=policy).ok


def test_forged_retention_records_are_found(two_writers: tuple[ClickHouseStore, ...]) -> None:
    a, _ = two_writers
    now = START + timedelta(days=DAYS)
    apply_retention(a, RetentionPolicy(timedelta(days=5)), now=now)
    assert verify_store(a).ok
    # 1. Widen the real retention record to a young batch, and delete that batch.
    young = _batch_ids(a, "dev")[-1]
    _sync(
        a,
        f"ALTER TABLE {a.database}.chain UPDATE detail = replace(detail, "
        "'\"removed_batches\": [', {w:String}) WHERE cluster = 'dev' AND kind = 'retention'",
        w=f'"removed_batches": ["{young}", ',
    )
    _sync(a, f"DELETE FROM {a.database}.events WHERE batch_id = {{b:String}}", b=young)
    kinds = _kinds(verify_store(a))
    assert ("record_altered", None) in kinds and ("events_removed", young) in kinds


def test_retention_record_forged_with_valid_hashes_is_found(
    two_writers: tuple[ClickHouseStore, ...],
) -> None:
    """Someone who computes the hashes right still cannot remove young events as retention."""
    a, _ = two_writers
    young = [s.record for s in read_records(a, "dev") if s.record.kind == "batch"][-1]
    at = datetime.now(UTC).replace(tzinfo=None)
    cutoff = young.first_time.isoformat() + "Z"  # not after the batch's last event
    forged = ChainRecord(
        cluster="dev",
        seq=0,
        kind="retention",
        batch_id=None,
        events=young.events,
        first_time=young.first_time,
        last_time=young.last_time,
        events_sha256=None,
        detail={
            "writer": "mallory",
            "cutoff": cutoff,
            "removed_before": cutoff,
            "removed_batches": [young.batch_id],
        },
        at=at,
    ).sealed()
    insert(a, [StoredRecord("mallory", forged, "")])
    _sync(a, f"DELETE FROM {a.database}.events WHERE batch_id = {{b:String}}", b=young.batch_id)
    report = verify_store(a)
    assert ("removal_invalid", young.batch_id) in _kinds(report)
    # A cutoff that lets the batch go, checked against the configured retention (30 days).
    late = (at - timedelta(days=1)).isoformat() + "Z"
    detail = {"writer": "mallory2", "cutoff": late, "removed_before": late, "removed_batches": []}
    forged = ChainRecord("dev", 0, "retention", None, 0, None, None, None, detail, at).sealed()
    insert(a, [StoredRecord("mallory2", forged, "")])
    kinds = {k for k, _ in _kinds(verify_store(a, policy=RetentionPolicy(timedelta(days=30))))}
    assert "removal_invalid" in kinds


def _days(store: ClickHouseStore, cluster: str) -> list[int]:
    """The days (0-based from START) of which the cluster still has events."""
    rows = store._client.query(
        f"SELECT DISTINCT toDate(stage_time) FROM {store.database}.events "
        "WHERE cluster = {c:String} ORDER BY 1",
        parameters={"c": cluster},
    ).result_rows
    return [(r[0] - START.date()).days for r in rows]


@pytest.fixture
def big_days(new_clickhouse_store: Any, tmp_path: Path) -> tuple[ClickHouseStore, ...]:
    """Two collectors, ``prod`` and ``dev``, DAYS days of COPIES x the trail's events each (one
    batch per day): large enough that the parts' fixed overhead (some KB each) is small beside
    the events, as in a real store."""
    from kubetrail.pipeline import ingest_paths

    a = new_clickhouse_store()
    b = new_clickhouse_store(database=a.database)
    for day in range(DAYS):
        for cluster in ("prod", "dev"):
            path = day_file(tmp_path, cluster, START + timedelta(days=day))
            lines = path.read_text().splitlines()
            copies = [
                line.replace('"auditID": "', f'"auditID": "{n:04d}-').replace(
                    '.005000Z"', f'.{5000 + n:06d}Z"'
                )
                for n in range(COPIES)
                for line in lines
            ]
            path.write_text("\n".join(copies) + "\n")
            ingest_paths(a if day % 2 else b, [str(path)], cluster)
    return a, b


COPIES = 40


def test_size_cap_evicts_the_oldest_batches_across_clusters(
    big_days: tuple[ClickHouseStore, ...],
) -> None:
    a, b = big_days
    per_day = COPIES * PER_DAY
    assert a.count("prod") == DAYS * per_day
    used, per_event = _usage(a)
    assert used > 0 and per_event > 0
    cap = int(used * 0.6)
    policy = RetentionPolicy(max_size=cap)
    now = START + timedelta(days=DAYS)
    before = {c: _days(a, c) for c in ("prod", "dev")}
    dry = apply_retention(a, policy, now=now, dry_run=True)
    assert {c: _days(a, c) for c in ("prod", "dev")} == before  # the dry run changed nothing
    assert not any(s.record.kind == "eviction" for c in before for s in read_records(a, c))
    assert set(dry.evicted) == {"prod", "dev"} and dry.used_bytes_after <= cap
    report = apply_retention(b, policy, now=now)
    assert [r.as_dict() | {"chain_seq": None} for r in report.removals] == [
        r.as_dict() for r in dry.removals
    ]
    assert {r.kind for r in report.removals} == {"eviction"} and report.max_size == cap
    evicted = {r.cluster: r for r in report.removals}
    # Oldest first, whatever the cluster: both clusters lose the same oldest days (their events
    # have the same times), keep a suffix of days, and the youngest day stays.
    kept = {c: _days(a, c) for c in ("prod", "dev")}
    assert kept["prod"] == kept["dev"] and kept["prod"] == list(range(kept["prod"][0], DAYS))
    assert 0 < kept["prod"][0] < DAYS - 1
    gone_days = kept["prod"][0]
    assert evicted["dev"].events == gone_days * per_day == len(evicted["dev"].batches) * per_day
    assert report.used_bytes_after <= cap < report.used_bytes_before  # by the estimate
    verified = verify_store(a, policy=policy)
    assert verified.ok, verified.problems
    assert verified.clusters["dev"].removed_events == gone_days * per_day
    records = [s.record for s in read_records(a, "dev") if s.record.kind == "eviction"]
    assert len(records) == 1 and records[0].detail["max_size"] == cap
    assert records[0].detail["reason"] == "eviction" and records[0].detail["used_bytes"] > cap
    # An eviction is only valid under a configured size cap.
    assert "removal_invalid" in {p.kind for p in verify_store(a, policy=RetentionPolicy()).problems}
    assert apply_retention(a, policy, now=now).removals == []  # under the cap now
    a.optimize()  # the merges that free the space on disk
    assert _usage(a)[0] <= cap
    assert apply_retention(a, policy, now=now).removals == []


def test_eviction_forged_to_take_the_youngest_batch_is_found(
    two_writers: tuple[ClickHouseStore, ...],
) -> None:
    """An eviction record with valid hashes cannot take a young batch and keep older ones."""
    a, _ = two_writers
    young = [s.record for s in read_records(a, "dev") if s.record.kind == "batch"][-1]
    after = datetime.fromisoformat(young.detail["request_last"].removesuffix("Z"))
    at = datetime.now(UTC).replace(tzinfo=None)
    iso = (after + timedelta(seconds=1)).isoformat() + "Z"
    detail = {"writer": "mallory", "cutoff": iso, "removed_before": iso,
              "removed_batches": [young.batch_id], "reason": "eviction"}  # fmt: skip
    forged = ChainRecord("dev", 0, "eviction", None, young.events, young.first_time,
                         young.last_time, None, detail, at).sealed()  # fmt: skip
    insert(a, [StoredRecord("mallory", forged, "")])
    _sync(a, f"DELETE FROM {a.database}.events WHERE batch_id = {{b:String}}", b=young.batch_id)
    problems = verify_store(a, policy=RetentionPolicy(max_size=10**12)).problems
    assert [p.kind for p in problems] == ["removal_invalid"]
    assert "kept the older batch" in problems[0].detail


def test_ttl_removals_are_not_silent(new_clickhouse_store: Any, tmp_path: Path) -> None:
    store = new_clickhouse_store(retention={"*": 30})  # `store init --retention '*=30'`
    _write(store, day_file(tmp_path, "prod", datetime.now(UTC).replace(tzinfo=None)), "prod")
    report = verify_store(store)
    assert [p.kind for p in report.problems] == ["ttl_unrecorded"]
    store.set_retention({})
    assert verify_store(store).ok


def test_digest_is_framed_and_canonical() -> None:
    one = pa.table(
        {
            "request_received": pa.array([2, 1], pa.timestamp("us")),
            "audit_id": ["b", "a"],
            "stage": ["x", "x"],
            "raw": ["{}", '{"a":1}'],
        }
    )
    expected = hashlib.sha256(
        b"kubetrail-events-ch-v1\n" + b'{"a":1}' + b"{}"
        + (7).to_bytes(4, "big") + (2).to_bytes(4, "big") + (2).to_bytes(8, "big")
    ).hexdigest()  # fmt: skip
    assert events_digest(one) == expected
    assert events_digest(one.take([1, 0])) == expected
