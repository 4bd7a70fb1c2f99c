"""ClickHouse's fast path (the server extracts the columns from the raw JSON) against its
reference path (every column built in Python), on a real server.

The pipeline sends raw batches to ClickHouse from its decoding child only (large imports,
``pipeline.CHILD_DECODE_BYTES``; the tests lower it): ``raw_batches_in_process`` is off on
ClickHouse, and set on a store instance here to compare the two column builders in-process.

Every column of every row must be identical: on all test files and on the edge cases of
``tests/store/test_fast_path.py`` (DuckDB's fast path), which change what each extraction rule
sees. A raw piece must stay one block under its own token, whatever the squashing settings and
its body's compression, so that exactness without FINAL holds on the fast path too.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from synthetic import events, race, rows_without_final

from kubetrail import decoder_process, pipeline
from kubetrail.demo.generate import generate_events
from kubetrail.model.rawbatch import RAW_SCHEMA
from kubetrail.model.schema import COLUMN_NAMES
from kubetrail.pipeline import IngestSummary, _raw_writer, ingest_paths
from kubetrail.store import clickhouse_raw
from kubetrail.store.base import BatchMeta
from kubetrail.store.clickhouse import ClickHouseStore, RawPiece
from kubetrail.store.clickhouse_pieces import cut
from kubetrail.store.verify import verify_store
from testdata import EVENT_FILES, ingest_quarantined

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")

# The DuckDB fast path's cases, reused as they are (that module is not a package's).
_spec = importlib.util.spec_from_file_location(
    "duckdb_fast_path_cases", Path(__file__).parents[1] / "store" / "test_fast_path.py"
)
assert _spec is not None and _spec.loader is not None
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)
ALL_FILES: list[Path] = _cases.ALL_FILES
CRAFTED: list[dict[str, Any]] = _cases.CRAFTED

_COLUMNS = [c for c in COLUMN_NAMES if c != "batch_id"]
_SORT = [(c, "ascending") for c in ("cluster", "audit_id", "stage", "request_received", "raw")]


def _rows(store: ClickHouseStore) -> pa.Table:
    """Every stored column but the random batch id, in a total order."""
    return store.query(f"SELECT {', '.join(_COLUMNS)} FROM events").sort_by(_SORT)


def _ingest(
    new_store: Any, tmp_path: Path, name: str, paths: list[Path], *, fast: bool, **kwargs: Any
) -> tuple[IngestSummary, pa.Table, list[dict[str, Any]], ClickHouseStore]:
    store = new_store()
    store.raw_batches_in_process = fast  # only from the decoding child by default
    quarantine_file = tmp_path / f"{name}-{'fast' if fast else 'ref'}.quarantine.jsonl"
    summary, entries = ingest_quarantined(store, paths, quarantine_file, fast=fast, **kwargs)
    return summary, _rows(store), entries, store


def _assert_same(
    new_store: Any,
    tmp_path: Path,
    name: str,
    paths: list[Path],
    *,
    verified: bool = True,
    **kwargs: Any,
) -> pa.Table:
    """Ingest ``paths`` on both paths; assert identical rows, counts, rejections and chain
    outcome (``verified``: the chain verifies)."""
    ref_summary, ref_rows, ref_quarantine, ref_store = _ingest(
        new_store, tmp_path, name, paths, fast=False, **kwargs
    )
    summary, rows, quarantine, store = _ingest(
        new_store, tmp_path, name, paths, fast=True, **kwargs
    )
    _assert_same_results(
        (summary, rows, quarantine, store), (ref_summary, ref_rows, ref_quarantine, ref_store)
    )
    report = verify_store(store)
    assert report.ok or not verified, report.problems
    return rows


_Results = tuple[IngestSummary, pa.Table, list[dict[str, Any]], ClickHouseStore]


def _assert_same_results(got: _Results, want: _Results) -> None:
    """Identical rows (every column), summaries, quarantines and chain outcomes."""
    summary, rows, quarantine, store = got
    ref_summary, ref_rows, ref_quarantine, ref_store = want
    assert rows.num_rows == ref_rows.num_rows
    for column in ref_rows.column_names:
        got, want = rows.column(column), ref_rows.column(column)
        assert got.equals(want), (column, _first_difference(got, want))
    got_summary, want_summary = summary.as_dict(), ref_summary.as_dict()
    for key in ("seconds", "quarantine"):
        got_summary.pop(key), want_summary.pop(key)
    assert got_summary == want_summary
    assert quarantine == ref_quarantine
    # The same chain outcome. (A batch whose duplicates carry other JSON than the stored copy,
    # as the edge files do against tests/data/events, is "events_changed" on both paths: the
    # chain records the batch as received.)
    report, ref_report = verify_store(store), verify_store(ref_store)
    assert [p.kind for p in report.problems] == [p.kind for p in ref_report.problems]


def _first_difference(got: pa.ChunkedArray, want: pa.ChunkedArray) -> tuple[Any, Any] | None:
    for a, b in zip(got.to_pylist(), want.to_pylist(), strict=True):
        if a != b:
            return a, b
    return None


def test_the_pipeline_sends_raw_batches_to_clickhouse_from_the_decoding_child_only(
    new_clickhouse_store: Any,
) -> None:
    store = new_clickhouse_store()
    assert callable(getattr(store, "write_raw_batches", None))
    assert _raw_writer(store, in_child=True) is not None
    assert _raw_writer(store) is None  # in-process: measured no faster (docs/scale-out.md)
    store.raw_batches_in_process = True
    assert _raw_writer(store) is not None
    with pytest.raises(Exception, match="neither the raw-batch nor the event schema"):
        store.write_raw_batches([pa.table({"x": [1]})], BatchMeta("c", "s", "b"))
    assert store.write_raw_batches([RAW_SCHEMA.empty_table()], BatchMeta("c", "s", "b")).stored == 0


def test_every_test_file_stores_the_same_rows_on_both_paths(
    new_clickhouse_store: Any, tmp_path: Path
) -> None:
    rows = _assert_same(new_clickhouse_store, tmp_path, "all", ALL_FILES, verified=False)
    assert rows.num_rows > 500


def test_small_chunks_and_batches_store_the_same_rows(
    new_clickhouse_store: Any, tmp_path: Path
) -> None:
    # Many batches, keys repeated across chunks and batches.
    paths = [*EVENT_FILES[:4], *ALL_FILES[-3:]]
    _assert_same(
        new_clickhouse_store,
        tmp_path,
        "small",
        paths,
        verified=False,
        chunk_records=7,
        batch_records=20,
    )


def test_crafted_events_store_the_same_rows(new_clickhouse_store: Any, tmp_path: Path) -> None:
    """Each crafted event changes what one rule sees (empty values, missing parts, derivations)."""
    apps = {"apiGroup": "apps", "apiVersion": "v1", "resource": "deployments", "name": "d"}
    crafted = [*CRAFTED, _cases._event(objectRef=apps)]  # plus a non-empty apiGroup
    path = _cases.crafted_file(tmp_path, crafted)
    rows = _assert_same(new_clickhouse_store, tmp_path, "crafted", [path])
    assert rows.num_rows == len(crafted) + 12
    # The cases reach both outcomes of every rule, so a wrong rule cannot pass unseen.
    for column in ("username", "user_uid", "impersonated_user", "user_agent", "api_group",
                   "namespace", "name", "response_code", "response_reason", "decision",
                   "decision_reason", "sa_namespace", "sa_name", "command",
                   "user_groups", "impersonated_groups", "source_ips"):  # fmt: skip
        values = rows.column(column)
        assert 0 < values.null_count < len(values), column
    assert set(rows.column("actor_kind").to_pylist()) == {
        "human", "serviceaccount", "node", "system", "anonymous"
    }  # fmt: skip
    assert set(rows.column("is_final").to_pylist()) == {True, False}
    assert len(set(rows.column("latency_ms").to_pylist())) > 1
    assert "" in rows.column("decision").to_pylist()  # kept, not null
    assert 0 in rows.column("response_code").to_pylist()


def test_demo_events_store_the_same_rows(new_clickhouse_store: Any, tmp_path: Path) -> None:
    path = tmp_path / "demo.jsonl"
    path.write_bytes(b"\n".join(generate_events(6000, seed=2)) + b"\n")
    rows = _assert_same(new_clickhouse_store, tmp_path, "demo", [path], chunk_records=1000)
    assert rows.num_rows == 6000


def _mixed_lines(count: int, seed: int) -> list[bytes]:
    """Demo events with refused lines, Secret events, EventLists, events of 5 KB or more (whose
    chunks take the reference path), a duplicate and a twin of one key (other JSON)."""
    demo = list(generate_events(count, seed=seed))
    twin = json.dumps(dict(json.loads(demo[3]), userAgent="a different client")).encode()
    for i in range(count // 3, count // 3 + 80):
        event = json.loads(demo[i])
        event["requestObject"] = {"kind": "ConfigMap", "data": {"blob": "x" * 5000}}
        demo[i] = json.dumps(event).encode()
    lines = _cases.with_other_lines(demo)
    return [*lines, demo[10], twin]


def test_a_mixed_file_and_repeated_keys(new_clickhouse_store: Any, tmp_path: Path) -> None:
    """Valid and refused lines, Secret events, EventLists, a duplicate and a twin of one key."""
    path = tmp_path / "mixed.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(_mixed_lines(300, 5)) + b"\n"))
    rows = _assert_same(
        new_clickhouse_store,
        tmp_path,
        "mixed",
        [path],
        verified=False,  # the twin
        chunk_records=64,
        batch_records=256,
    )
    assert rows.num_rows > 300


def test_chunks_that_took_the_reference_path_mix_in(
    new_clickhouse_store: Any, tmp_path: Path
) -> None:
    """Chunks of events over FAST_EVENT_BYTES arrive with the event schema, mixed with raw
    chunks."""
    demo = [json.loads(line) for line in generate_events(400, seed=6)]
    for event in demo[100:150]:
        event["requestObject"] = {"kind": "ConfigMap", "data": {"blob": "x" * 5000}}
    path = tmp_path / "large.jsonl"
    path.write_bytes(b"\n".join(json.dumps(e).encode() for e in demo) + b"\n")
    rows = _assert_same(new_clickhouse_store, tmp_path, "large", [path], chunk_records=25)
    assert rows.num_rows == 400


def test_a_raw_piece_is_one_block_under_the_reference_pieces_token(
    new_clickhouse_store: Any,
) -> None:
    """Squashing settings neither split nor merge a raw piece's block, and its token is the
    reference path's: a collector on either path racing on the same events stores them once."""
    store = new_clickhouse_store()
    store._client.command(f"SYSTEM STOP MERGES {store.database}.events")
    table = events(3000, days=1)
    raw = table.select(RAW_SCHEMA.names)
    target = f"{store.database}.events"
    piece = cut(raw, target=target, cluster="c")[1]
    assert piece.table.num_rows > 1000
    reference = cut(table, target=target, cluster="c")[1]
    assert reference.token == piece.token
    odd = {"max_insert_block_size": 100, "min_insert_block_size_rows": 100, "max_block_size": 100}
    meta = BatchMeta("c", "s", "b1")
    store._client.command(
        clickhouse_raw.insert_sql(target),
        parameters=RawPiece.of(piece, meta).parameters,
        data=clickhouse_raw.body(piece.table, "lz4"),  # compressed, as the store sends it
        settings={**piece.settings(), **odd},
    )
    parts = store._client.query(
        "SELECT count() FROM system.parts WHERE database = {db:String} "
        "AND table = 'events' AND active",
        parameters={"db": store.database},
    ).result_rows[0][0]
    assert parts == 1
    store._insert_piece(reference)  # the reference path's piece of the same rows: dropped
    store._insert_piece(RawPiece.of(piece, BatchMeta("c", "other", "b2")))  # a retry: dropped
    assert rows_without_final(store) == piece.table.num_rows


@pytest.mark.slow
def test_collectors_on_both_paths_racing_on_retried_batches(new_clickhouse_store: Any) -> None:
    """Four collectors, two on each path, write the same retried batches (each over three days)
    at once: the raw pieces carry the reference pieces' tokens, so each event is one row."""
    first = new_clickhouse_store()
    collectors = [first] + [new_clickhouse_store(database=first.database) for _ in range(3)]
    batches = [events(600, first=600 * k, days=2) for k in range(6)]

    def write(store: ClickHouseStore, index: int, table: pa.Table, meta: BatchMeta) -> None:
        if index % 2:
            store.write_raw_batches([table.select(RAW_SCHEMA.names)], meta)
        else:
            store.write_batch(table, meta)

    race(collectors, batches, jitter=0.02, write=write)
    assert rows_without_final(first) == first.count() == 6 * 600


def _through_the_child(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Send every import to the decoding child; the list counts the children started."""
    started: list[int] = []
    decode = decoder_process.decoded_in_child

    def counted(*args: Any, **kwargs: Any) -> Any:
        started.append(1)
        return decode(*args, **kwargs)

    monkeypatch.setattr(pipeline, "CHILD_DECODE_BYTES", 0)
    monkeypatch.setattr(decoder_process, "decoded_in_child", counted)
    return started


def test_a_large_import_through_the_child_stores_what_the_in_process_path_stores(
    new_clickhouse_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decoding child sends raw batches (and event tables for chunks of large events); the
    server extracts the columns: the rows, summary, quarantine and chain outcome are those of
    the in-process reference path (as before issue 8e)."""
    paths = [tmp_path / "mixed-1.jsonl", tmp_path / "mixed-2.jsonl.gz", EVENT_FILES[0]]
    lines = _mixed_lines(2000, 7)
    paths[0].write_bytes(b"\n".join(lines[:1200]) + b"\n")
    paths[1].write_bytes(gzip.compress(b"\n".join(lines[1200:]) + b"\n"))
    kwargs: dict[str, Any] = {"chunk_records": 100, "batch_records": 450}
    want = _ingest(new_clickhouse_store, tmp_path, "child", paths, fast=False, **kwargs)
    started = _through_the_child(monkeypatch)
    store = new_clickhouse_store()
    quarantine_file = tmp_path / "child-child.quarantine.jsonl"
    summary, entries = ingest_quarantined(store, paths, quarantine_file, **kwargs)
    assert started == [1]
    got = (summary, _rows(store), entries, store)
    _assert_same_results(got, want)
    assert summary.rejected > 50 and summary.duplicates >= 1
    assert summary.read == summary.stored + summary.duplicates + summary.rejected
    assert got[1].num_rows == summary.stored


def test_collectors_importing_the_same_file_through_the_child_at_once_store_each_event_once(
    new_clickhouse_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two collectors import the same file at the same moment (a retried import reaching
    both): the same raw pieces under the same tokens, so each event is one row without FINAL."""
    path = tmp_path / "demo.jsonl"
    path.write_bytes(b"\n".join(generate_events(3000, seed=8)) + b"\n")
    started = _through_the_child(monkeypatch)
    first = new_clickhouse_store()
    collectors = [first, new_clickhouse_store(database=first.database)]
    summaries: list[IngestSummary] = []
    errors: list[BaseException] = []
    ready = threading.Barrier(len(collectors), timeout=60)

    def collect(store: ClickHouseStore) -> None:
        try:
            ready.wait()
            summaries.append(
                ingest_paths(store, [str(path)], "c1", chunk_records=250, batch_records=500)
            )
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=collect, args=(store,)) for store in collectors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(thread.is_alive() for thread in threads), errors
    assert len(started) == 2
    assert all(s.read == 3000 and s.stored + s.duplicates == 3000 for s in summaries)
    assert rows_without_final(first) == first.count() == 3000
