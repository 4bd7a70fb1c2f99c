"""The embedded store: lossless round trip, deduplication, atomic batches, deletes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from kubetrail.errors import StoreError
from kubetrail.model import decode_records, normalize
from kubetrail.model.redact import REDACTED
from kubetrail.pipeline import ingest_paths
from kubetrail.store import BatchMeta, open_store
from testdata import EVENT_FILES, EVENTLIST_FILE, read_json_lines

SAMPLE = EVENT_FILES[0]


def _key(event: dict, cluster: str = "default") -> tuple[str, str, str]:
    return (cluster, event["auditID"], event["stage"])


def _without_secret_values(node):
    """Replace every value that redaction may change, for a comparison of everything else."""
    if isinstance(node, dict):
        return {
            k: (REDACTED if k in ("data", "stringData") else _without_secret_values(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_without_secret_values(v) for v in node]
    return node


def test_export_gives_back_every_event_with_its_fields(store):
    ingest_paths(store, EVENT_FILES)
    exported = [json.loads(line) for line in store.export()]
    originals = [e for path in EVENT_FILES for e in read_json_lines(path)]
    assert {_key(e) for e in exported} == {_key(e) for e in originals}

    def identity(event: dict) -> tuple:
        # Some test corpora reuse an auditID for different requests: time tells them apart.
        when = event.get("requestReceivedTimestamp") or event.get("timestamp")
        return (*_key(event), event["apiVersion"], when)

    # Test corpora also hold variants of one event (Falco's traces change only the user): the
    # store keeps the first, so each exported event must equal one of its originals.
    by_identity: dict[tuple, list] = {}
    for event in originals:
        by_identity.setdefault(identity(event), []).append(_without_secret_values(event))
    assert len(exported) == len({identity(e)[:3] + identity(e)[4:] for e in originals})
    for event in exported:
        assert _without_secret_values(event) in by_identity[identity(event)]


def test_export_is_in_time_order_and_per_cluster(store):
    ingest_paths(store, [SAMPLE], cluster="a")
    ingest_paths(store, [EVENTLIST_FILE], cluster="b")
    lines = list(store.export())
    times = [
        json.loads(x).get("requestReceivedTimestamp") or json.loads(x)["timestamp"] for x in lines
    ]
    assert times == sorted(times)
    assert len(list(store.export("b"))) == sum(
        len(d["items"]) for d in read_json_lines(EVENTLIST_FILE)
    )
    assert list(store.export("nope")) == []


def test_second_ingest_of_the_same_file_stores_nothing(store):
    first = ingest_paths(store, [SAMPLE])
    second = ingest_paths(store, [SAMPLE])
    assert first.stored == len(read_json_lines(SAMPLE)) and first.duplicates == 0
    assert (second.stored, second.duplicates) == (0, first.stored)
    assert store.count() == first.stored


def test_duplicates_inside_one_batch_and_across_clusters(store):
    lines = [(1, SAMPLE.read_bytes().splitlines()[0])] * 3
    chunk = decode_records(lines, "t")
    table = normalize(chunk, cluster="x", source="t", batch_id="b1").table
    assert store.write_batch(table, BatchMeta("x", "t", "b1")).stored == 1
    other = normalize(chunk, cluster="y", source="t", batch_id="b2").table
    assert store.write_batch(other, BatchMeta("y", "t", "b2")).stored == 1
    assert store.count("x") == store.count("y") == 1


def test_same_audit_id_at_another_time_is_another_request(store):
    event = read_json_lines(SAMPLE)[0]
    later = dict(event, timestamp="2030-01-01T00:00:00Z")
    later.pop("requestReceivedTimestamp", None)
    lines = [(1, json.dumps(event).encode()), (2, json.dumps(later).encode())]
    table = normalize(decode_records(lines, "t"), cluster="c", source="t", batch_id="b").table
    assert store.write_batch(table, BatchMeta("c", "t", "b")).stored == 2


def test_failed_batch_leaves_nothing_behind(store):
    chunk = decode_records(list(enumerate(SAMPLE.read_bytes().splitlines(), 1)), "t")
    table = normalize(chunk, cluster="c", source="t", batch_id="b").table
    store.write_batch(table.slice(0, 5), BatchMeta("c", "t", "same-id"))
    with pytest.raises(StoreError):
        # The batch id is taken: the batch record fails after the events were inserted.
        store.write_batch(table.slice(5), BatchMeta("c", "t", "same-id"))
    assert store.count() == 5


def test_stats_count_and_delete_older_than(store):
    ingest_paths(store, [SAMPLE], cluster="old")
    ingest_paths(store, [EVENT_FILES[-1]], cluster="new")
    stats = store.stats()
    assert stats.total == store.count() == store.count("old") + store.count("new")
    assert sum(stats.by_stage.values()) == sum(stats.by_verb.values()) == stats.total
    assert stats.first <= stats.last
    cutoff = datetime(2100, 1, 1, tzinfo=UTC)
    removed = store.delete_older_than(cutoff, cluster="old")
    assert removed == stats.by_cluster["old"] and store.count("old") == 0
    assert store.count("new") == stats.by_cluster["new"]
    assert store.delete_older_than(datetime(1990, 1, 1)) == 0


def test_query_binds_values_as_parameters(store):
    ingest_paths(store, [SAMPLE])
    hostile = "x' OR '1'='1"
    assert store.query(
        "SELECT count(*) AS n FROM events WHERE verb = ?", [hostile]
    ).to_pylist() == [{"n": 0}]
    with pytest.raises(StoreError, match="query failed"):
        store.query("SELECT nope FROM events")


def test_raw_json_is_stored_compressed(db_path):
    with open_store(db_path) as store:
        ingest_paths(store, EVENT_FILES)
    con = duckdb.connect(str(db_path), read_only=True)
    methods = {
        row[0]
        for row in con.execute(
            "SELECT compression FROM pragma_storage_info('events') WHERE column_name = 'raw' "
            "AND segment_type = 'VARCHAR'"
        ).fetchall()
    }
    con.close()
    assert methods == {"ZSTD"}


def test_other_schema_version_is_refused(db_path):
    open_store(db_path).close()
    con = duckdb.connect(str(db_path))
    con.execute("UPDATE meta SET value = '99'")
    con.close()
    with pytest.raises(StoreError, match="schema version 99"):
        open_store(db_path)


def test_missing_store_read_only_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="cannot open"):
        open_store(tmp_path / "missing.duckdb", read_only=True)


def _big_input(path: Path, copies: int) -> int:
    """Copies of the real v1beta1 file with distinct auditIDs; returns the event count."""
    source = next(p for p in EVENT_FILES if "v1beta1" in p.name)
    events = read_json_lines(source)
    with path.open("w") as out:
        for i in range(copies):
            for event in events:
                out.write(json.dumps(dict(event, auditID=f"{event['auditID']}-{i}")) + "\n")
    return copies * len(events)


def test_kill_9_mid_ingest_leaves_whole_batches_only(tmp_path):
    data = tmp_path / "big.jsonl"
    total = _big_input(data, copies=60)
    db = tmp_path / "crash.duckdb"
    script = textwrap.dedent(
        f"""
        import sys
        from kubetrail.pipeline import ingest_paths
        from kubetrail.store import open_store
        store = open_store({str(db)!r})
        def done(n):
            print("committed", n, flush=True)
        ingest_paths(store, [{str(data)!r}], progress=done, batch_records=500)
        print("finished", flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    committed = 0
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("committed"):
            committed += 1
        if committed >= 5 or time.monotonic() > deadline:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert committed >= 5, "the ingest did not get going"
    with open_store(db) as store:
        per_batch = store.query(
            "SELECT b.batch_id, b.stored, count(e.audit_id) AS n FROM batches b "
            "LEFT JOIN events e USING (batch_id) GROUP BY ALL"
        ).to_pylist()
        orphans = store.query(
            "SELECT count(*) AS n FROM events WHERE batch_id NOT IN (SELECT batch_id FROM batches)"
        ).to_pylist()
        stored = store.count()
    assert orphans == [{"n": 0}]
    assert all(row["stored"] == row["n"] for row in per_batch)
    assert len(per_batch) >= committed and stored < total
    # Ingesting again completes the file: nothing lost, nothing twice.
    with open_store(db) as store:
        summary = ingest_paths(store, [data])
        assert summary.duplicates == stored and store.count() == total
        keys = store.query("SELECT count(DISTINCT (audit_id, stage)) AS n FROM events").to_pylist()
        assert keys == [{"n": total}]


def test_delete_accepts_aware_and_naive_cutoffs(store):
    ingest_paths(store, [SAMPLE])
    newest = store.stats().last
    assert store.delete_older_than(newest.replace(tzinfo=UTC) - timedelta(days=365 * 50)) == 0
    total = store.count()
    assert store.delete_older_than(newest + timedelta(seconds=1)) == total
    assert store.count() == 0


def test_write_group_commits_several_batches_with_their_own_results(store):
    lines = list(enumerate(SAMPLE.read_bytes().splitlines(), 1))
    chunk = decode_records(lines, "t")
    table = normalize(chunk, cluster="c", source="t", batch_id="").table
    first, overlap = table.slice(0, 10), table.slice(5, 10)
    results = store.write_group(
        [(first, BatchMeta("c", "t", "g1")), (overlap, BatchMeta("c", "t", "g2"))]
    )
    assert [(r.stored, r.duplicates) for r in results] == [(10, 0), (5, 5)]
    rows = store.query("SELECT batch_id, stored FROM batches ORDER BY batch_id").to_pylist()
    assert rows == [{"batch_id": "g1", "stored": 10}, {"batch_id": "g2", "stored": 5}]
    assert store.count() == 15
    per_batch = store.query("SELECT batch_id, count(*) AS n FROM events GROUP BY 1 ORDER BY 1")
    assert per_batch.to_pylist() == [{"batch_id": "g1", "n": 10}, {"batch_id": "g2", "n": 5}]
