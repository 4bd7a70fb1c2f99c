"""The fast path (DuckDB extracts the columns from the raw JSON) against the reference path.

The reference path builds every column in Python (``model/normalize.py``); the fast path
(``model/rawbatch.py`` + ``store/duckdb_raw.py``) must store exactly the same rows, refuse
the same records for the same reasons, and keep the hash chain verifiable.
"""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from kubetrail.demo.generate import DEFAULT_END, generate_events
from kubetrail.model.rawbatch import RAW_SCHEMA, raw_batch
from kubetrail.model.schema import COLUMN_NAMES
from kubetrail.pipeline import IngestSummary, ingest_paths
from kubetrail.store import DuckDBStore, open_store
from kubetrail.store.verify import verify_store
from testdata import (
    DATA,
    EDGE_FILES,
    EVENT_FILES,
    EVENTLIST_FILE,
    PARTIAL_FILES,
    ingest_quarantined,
)

ALL_FILES = [*EVENT_FILES, *EDGE_FILES, *PARTIAL_FILES, EVENTLIST_FILE]
_SORT = [(c, "ascending") for c in ("cluster", "audit_id", "stage", "request_received", "raw")]


def _rows(store: DuckDBStore) -> pa.Table:
    """Every stored column but the random batch id, in a total order."""
    columns = [c for c in COLUMN_NAMES if c != "batch_id"]
    table = store.query(f"SELECT {', '.join(columns)} FROM events")
    return table.sort_by(_SORT)


def _ingest(
    tmp_path: Path, name: str, paths: list[Path], *, fast: bool, **kwargs: object
) -> tuple[IngestSummary, pa.Table, list[dict], DuckDBStore]:
    db = tmp_path / f"{name}-{'fast' if fast else 'ref'}.duckdb"
    store = open_store(db)
    quarantine_file = tmp_path / f"{name}-{'fast' if fast else 'ref'}.quarantine.jsonl"
    summary, entries = ingest_quarantined(store, paths, quarantine_file, fast=fast, **kwargs)
    return summary, _rows(store), entries, store


def _assert_same(tmp_path: Path, name: str, paths: list[Path], **kwargs: object) -> int:
    ref_summary, ref_rows, ref_quarantine, ref_store = _ingest(
        tmp_path, name, paths, fast=False, **kwargs
    )
    summary, rows, quarantine, store = _ingest(tmp_path, name, paths, fast=True, **kwargs)
    try:
        for column in ref_rows.column_names:
            assert rows.column(column).equals(ref_rows.column(column)), column
        assert rows.num_rows == ref_rows.num_rows
        got, want = summary.as_dict(), ref_summary.as_dict()
        got.pop("seconds"), want.pop("seconds")
        assert got.pop("quarantine") is not None or not summary.rejected
        want.pop("quarantine")
        assert got == want
        assert quarantine == ref_quarantine
        report = verify_store(store)
        assert report.ok, report
    finally:
        store.close()
        ref_store.close()
    return rows.num_rows


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_test_file_stores_the_same_rows_on_both_paths(tmp_path, path):
    _assert_same(tmp_path, "file", [path])


def test_all_files_in_small_batches_store_the_same_rows(tmp_path):
    # Small chunks and batches: many transactions, keys repeated across chunks and batches.
    stored = _assert_same(tmp_path, "all", ALL_FILES, chunk_records=7, batch_records=20)
    assert stored > 500


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_demo_events_store_the_same_rows(tmp_path, seed):
    path = tmp_path / f"demo-{seed}.jsonl"
    path.write_bytes(b"\n".join(generate_events(6000, seed=seed)) + b"\n")
    assert _assert_same(tmp_path, f"demo{seed}", [path], chunk_records=1000) == 6000


def with_other_lines(demo: list[bytes]) -> list[bytes]:
    """``demo`` with a refused line every 30 lines, a Secret event (from the real events) every
    40 and an EventList line every 100. Shared with the ClickHouse fast path's tests."""
    secret_events = [
        line for path in EVENT_FILES for line in path.read_bytes().splitlines() if b"ecret" in line
    ]
    bad = [b"not json", b"[1,2]", b'{"kind":"Event","apiVersion":"audit.k8s.io/v1"}']
    eventlists = EVENTLIST_FILE.read_bytes().splitlines()[:3]
    lines: list[bytes] = []
    for i, line in enumerate(demo):
        lines.append(line)
        if i % 30 == 0:
            lines.append(bad[i // 30 % len(bad)])
        if i % 40 == 0 and secret_events:
            lines.append(secret_events[i // 40 % len(secret_events)])
        if i % 100 == 0:
            lines.append(eventlists[i // 100 % len(eventlists)])
    return lines


def test_a_mixed_file_falls_back_line_by_line(tmp_path):
    """Valid lines, refused lines, Secret events and EventList lines in one file."""
    demo = list(generate_events(300, seed=5))
    lines = with_other_lines(demo)
    lines.append(demo[10])  # a duplicate of an earlier line, in another chunk
    path = tmp_path / "mixed.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    stored = _assert_same(tmp_path, "mixed", [path], chunk_records=64, batch_records=256)
    assert stored > 300


def test_repeated_keys_in_one_chunk_keep_the_first_like_the_reference(tmp_path):
    events = [json.loads(line) for line in generate_events(50, seed=9)]
    twin = dict(events[3], userAgent="a different client")
    lines = [json.dumps(e).encode() for e in [*events, twin]]
    path = tmp_path / "twins.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    _assert_same(tmp_path, "twins", [path])


def test_reingest_stores_nothing_new_on_the_fast_path(tmp_path):
    path = EVENT_FILES[0]
    summary, _rows1, _, store = _ingest(tmp_path, "again", [path], fast=True)
    try:
        again = ingest_paths(store, [str(path)], "c1")
        assert again.stored == 0
        assert again.duplicates == summary.stored + summary.duplicates
        assert verify_store(store).ok
    finally:
        store.close()


def test_a_batch_reaching_back_into_stored_time_finds_its_duplicates(tmp_path):
    """A batch later than everything stored skips the comparison; one overlapping must not.

    The second file repeats the last 40 stored events (the end of the stored time range) and
    goes on with newer ones, so only its first statement's range touches stored rows.
    """
    old = list(generate_events(3_000, seed=11))
    later = DEFAULT_END + timedelta(hours=2)
    newer = list(generate_events(2_000, seed=12, end=later, span=timedelta(hours=1)))
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"\n".join(old) + b"\n")
    second.write_bytes(b"\n".join([*old[-40:], *newer]) + b"\n")
    store = open_store(tmp_path / "store.duckdb")
    try:
        assert ingest_paths(store, [first]).stored == 3_000
        again = ingest_paths(store, [second])
        assert (again.stored, again.duplicates) == (2_000, 40)
        assert store.count() == 5_000
        assert verify_store(store).ok
    finally:
        store.close()


def test_a_secret_value_never_reaches_the_raw_batch():
    secret = next(
        line
        for line in (DATA / "events" / "falco-k8s-audit-traces.jsonl").read_bytes().splitlines()
        if b'"secrets"' in line and b'"data"' in line
    )
    value = next(iter(json.loads(secret)["responseObject"]["data"].values()))
    batch = raw_batch([(1, secret)], source="t")
    assert batch.table.schema == RAW_SCHEMA
    assert batch.table.column("redacted").to_pylist() == [True]
    assert value not in batch.table.column("raw")[0].as_py()


def _event(**fields: object) -> dict:
    base: dict = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": "id-0",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/ns/pods/p",
        "verb": "get",
        "user": {"username": "alice", "uid": "u1", "groups": ["g1", "g2"]},
        "sourceIPs": ["10.0.0.1"],
        "userAgent": "kubectl",
        "objectRef": {"resource": "pods", "namespace": "ns", "name": "p", "apiVersion": "v1"},
        "responseStatus": {"code": 200},
        "requestReceivedTimestamp": "2026-01-02T03:04:05.123456Z",
        "stageTimestamp": "2026-01-02T03:04:05.223456789Z",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


_EXEC = "/api/v1/namespaces/ns/pods/p/exec?command=sh&command=-c&command=ls%20-la+%2Ftmp&stdout=1"
# Each changes what a column derives from: empty values, missing parts, the derived rules.
CRAFTED = [
    _event(),
    _event(user={"username": "", "uid": "", "groups": []}, stage="ResponseStarted"),
    _event(user={}, sourceIPs=[], userAgent="", stage="ResponseStarted"),
    _event(stage="ResponseStarted", responseStatus={"code": 401, "reason": ""}),
    _event(stage="ResponseStarted", responseStatus={"code": 0, "reason": "Forbidden"}),
    _event(stage="Panic", responseStatus=None, user=None),
    _event(stage="RequestReceived", responseStatus={}, stageTimestamp=None),
    _event(user={"username": "system:serviceaccount:kube-system:default"}),
    _event(user={"username": "system:serviceaccount:a:b:c"}),
    _event(user={"username": "system:serviceaccount::b"}),
    _event(user={"username": "system:serviceaccount:a:"}),
    _event(user={"username": "system:serviceaccount:a"}),
    _event(user={"username": "system:serviceaccount:ä\n:b\u00e9"}),
    _event(user={"username": "System:serviceaccount:a:b"}),
    _event(user={"username": "system:node:n1"}, impersonatedUser={"username": "", "groups": []}),
    _event(user={"username": "system:anonymous"}, impersonatedUser={"username": "bob"}),
    _event(user={"username": "system:kube-scheduler"}, impersonatedUser={"groups": ["x"]}),
    _event(user={"username": 'Ünïcødé \u2603 \\n "q"'}, userAgent="a\u0000b"),
    _event(
        objectRef={
            "resource": "pods",
            "subresource": "exec",
            "namespace": "",
            "name": "",
            "apiGroup": "",
            "apiVersion": "",
        },
        requestURI=_EXEC,
        verb="create",
    ),
    _event(
        objectRef={"resource": "pods", "subresource": "attach", "namespace": "ns", "name": "p"},
        requestURI="/api/v1/namespaces/ns/pods/p/attach?stdin=1",
        verb="create",
    ),
    _event(annotations={"authorization.k8s.io/decision": "", "authorization.k8s.io/reason": ""}),
    _event(annotations={"authorization.k8s.io/decision": "forbid", "other": "x"}),
    _event(annotations={}),
    _event(objectRef=None, requestURI="/healthz", verb="get", level="None"),
    _event(objectRef={}, verb="list"),
    _event(
        apiVersion="audit.k8s.io/v1beta1",
        requestReceivedTimestamp=None,
        stageTimestamp=None,
        timestamp="2026-01-02T03:04:05+02:00",
    ),
    _event(requestReceivedTimestamp="2026-01-02 03:04:05.999999999", stageTimestamp=None),
    _event(level=None, extra={"nested": [1, 2.5, None, True]}),
]


def crafted_file(tmp_path: Path, crafted: list[dict]) -> Path:
    """The crafted events as JSON lines, plus their first six in an EventList of each version
    (12 more events). Shared with the ClickHouse fast path's tests."""
    lines = [json.dumps(dict(e, auditID=f"id-{i}")).encode() for i, e in enumerate(crafted)]
    items = [
        {k: v for k, v in dict(e, auditID=f"list-{i}").items() if k not in ("kind", "apiVersion")}
        for i, e in enumerate(crafted[:6])
    ]
    for version in ("audit.k8s.io/v1", "audit.k8s.io/v1beta1"):
        document = {"kind": "EventList", "apiVersion": version, "items": items}
        lines.append(json.dumps(document).encode())
        items = [dict(item, auditID=item["auditID"] + "b") for item in items]
    path = tmp_path / "crafted.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_crafted_events_store_the_same_rows(tmp_path):
    path = crafted_file(tmp_path, CRAFTED)
    assert _assert_same(tmp_path, "crafted", [path]) == len(CRAFTED) + 12


def test_a_long_transaction_closes_a_chain_record_every_few_rows(tmp_path, monkeypatch):
    """Inside one transaction, every RAW_CHAIN_ROWS rows form a batch with its own record."""
    import kubetrail.store.duckdb as engine

    monkeypatch.setattr(engine, "RAW_INSERT_ROWS", 40)
    monkeypatch.setattr(engine, "RAW_CHAIN_ROWS", 100)
    path = tmp_path / "demo.jsonl"
    lines = list(generate_events(1000, seed=4))
    path.write_bytes(b"\n".join([*lines, *lines[200:260]]) + b"\n")
    stored = _assert_same(tmp_path, "sub", [path], chunk_records=30, batch_records=600)
    assert stored == 1000
    store = open_store(tmp_path / "sub-fast.duckdb")
    try:
        batches = store.query("SELECT batch_id, received, stored FROM batches").to_pylist()
        chained = store.query("SELECT count(*) AS n FROM chain").column("n")[0].as_py()
    finally:
        store.close()
    assert len(batches) >= 8 and chained == len(batches)
    assert sum(b["received"] for b in batches) == 1060
    assert all(b["received"] < 100 + 2 * 40 for b in batches)


def test_chunks_of_large_events_take_the_reference_path(tmp_path, monkeypatch):
    """Chunks of events over FAST_EVENT_BYTES on average are built in Python; same rows."""
    import kubetrail.pipeline as pipeline

    monkeypatch.setattr(pipeline, "FAST_EVENT_BYTES", 1_600)
    events = [json.loads(line) for line in generate_events(400, seed=6)]
    for event in events[100:150]:
        event["requestObject"] = {"kind": "ConfigMap", "data": {"blob": "x" * 5000}}
    path = tmp_path / "large.jsonl"
    path.write_bytes(b"\n".join(json.dumps(e).encode() for e in events) + b"\n")
    assert _assert_same(tmp_path, "large", [path], chunk_records=25) == 400
