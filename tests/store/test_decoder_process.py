"""Large imports decode in a child process: the same rows, refusals and errors as in-process.

``pipeline.CHILD_DECODE_BYTES`` decides which imports go to the child; the tests set it to 0
(every file import) or out of reach (none) and compare the two.
"""

from __future__ import annotations

import gc
import gzip
import os
import shutil
import stat
import sys
import threading
from contextlib import suppress
from pathlib import Path

import psutil
import pytest

from containerlogs import Wrapper, interleaved
from kubetrail import decoder_process, pipeline
from kubetrail.decoder_process import DecoderProcessError
from kubetrail.demo.generate import generate_events
from kubetrail.errors import SourceError, StoreError
from kubetrail.model.schema import COLUMN_NAMES
from kubetrail.pipeline import ingest_paths
from kubetrail.store import DuckDBStore, open_store
from kubetrail.store.verify import verify_store
from testdata import EDGE_FILES, EVENT_FILES, EVENTLIST_FILE, PARTIAL_FILES, ingest_quarantined

_SORT = [(c, "ascending") for c in ("cluster", "audit_id", "stage", "request_received", "raw")]


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the decoding processes started, with every file import sent to one."""
    started: list[int] = []
    real = decoder_process.decoded_in_child

    def counted(*args, **kwargs):
        started.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(decoder_process, "decoded_in_child", counted)
    monkeypatch.setattr(pipeline, "CHILD_DECODE_BYTES", 0)
    return started


def _import(tmp_path: Path, name: str, paths: list[Path], **kwargs):
    store = open_store(tmp_path / f"{name}.duckdb")
    summary, quarantine = ingest_quarantined(
        store, paths, tmp_path / f"{name}.quarantine.jsonl", format_in="auto", **kwargs
    )
    columns = [c for c in COLUMN_NAMES if c != "batch_id"]
    rows = store.query(f"SELECT {', '.join(columns)} FROM events").sort_by(_SORT)
    return summary, rows, quarantine, store


def _container_log(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "kube-apiserver.log"
    events = [line for line in EVENT_FILES[0].read_bytes().splitlines() if line.strip()]
    records, noise = interleaved(Wrapper("cri", split=300), events)
    path.write_bytes(b"\n".join(records) + b"\n")
    return path, noise


def test_the_child_stores_what_in_process_decoding_stores(tmp_path, children, monkeypatch):
    packed = tmp_path / "packed.jsonl.gz"
    packed.write_bytes(gzip.compress(EVENT_FILES[1].read_bytes()))
    paths = [*EVENT_FILES, *EDGE_FILES, *PARTIAL_FILES, EVENTLIST_FILE, packed]
    log, noise = _container_log(tmp_path)
    paths.append(log)

    summary, rows, quarantine, store = _import(tmp_path, "child", paths)
    assert children == [1]
    monkeypatch.setattr(pipeline, "CHILD_DECODE_BYTES", 1 << 62)
    ref_summary, ref_rows, ref_quarantine, ref_store = _import(tmp_path, "inproc", paths)
    assert children == [1]
    try:
        assert rows.num_rows == ref_rows.num_rows > 0
        for column in ref_rows.column_names:
            assert rows.column(column).equals(ref_rows.column(column)), column
        got, want = summary.as_dict(), ref_summary.as_dict()
        for key in ("seconds", "quarantine"):
            got.pop(key), want.pop(key)
        assert got == want
        assert summary.rejected > 0 and summary.not_audit == noise > 0
        assert quarantine == ref_quarantine
        assert verify_store(store).ok
    finally:
        store.close()
        ref_store.close()


def test_a_file_the_child_cannot_read_fails_like_in_process_after_the_files_before(
    tmp_path, children, monkeypatch
):
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(EVENT_FILES[0].read_bytes())[:200])
    paths = [EVENT_FILES[0], broken]
    errors = []
    for name, limit in (("child", 0), ("inproc", 1 << 62)):
        monkeypatch.setattr(pipeline, "CHILD_DECODE_BYTES", limit)
        store = open_store(tmp_path / f"{name}.duckdb")
        try:
            with pytest.raises(SourceError) as raised:
                ingest_paths(store, paths)
            errors.append(str(raised.value))
            stored = len(EVENT_FILES[0].read_bytes().splitlines())
            assert store.count() == stored
        finally:
            store.close()
    assert children == [1]
    assert errors[0] == errors[1] and str(broken) in errors[0]


def test_a_child_that_dies_without_a_word_is_an_error(tmp_path, children, monkeypatch):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(sys, "executable", str(fake))
    store = open_store(tmp_path / "store.duckdb")
    try:
        with pytest.raises(DecoderProcessError, match="ended without finishing"):
            ingest_paths(store, [EVENT_FILES[0]])
        assert store.count() == 0
    finally:
        store.close()


class _FailingStore(DuckDBStore):
    """A real store whose second fast-path batch fails, as a full disk would."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.writes = 0

    def write_raw_batches(self, tables, meta):
        self.writes += 1
        if self.writes == 2:
            for _ in tables:  # consume like a real write, then fail
                pass
            raise StoreError("cannot write the batch: disk full")
        return super().write_raw_batches(tables, meta)


@pytest.mark.slow
def test_a_store_failure_stops_the_child(tmp_path, children):
    events = tmp_path / "events.jsonl"
    with events.open("wb") as out:
        for line in generate_events(150_000, seed=21):
            out.write(line + b"\n")
    store = _FailingStore(tmp_path / "store.duckdb")
    try:
        with pytest.raises(StoreError, match="disk full"):
            ingest_paths(store, [events])
        assert children == [1]
        assert store.count() == pipeline.FAST_BATCH_RECORDS
        alive = [
            p for p in psutil.Process().children(recursive=True) if "decoder_child" in p.cmdline()
        ]
        assert alive == []
    finally:
        store.close()
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_chunks_end_at_their_byte_bound_before_their_count():
    big = [(i, b"x" * (1024 * 1024)) for i in range(1, 21)]
    sizes = [len(c) for c in decoder_process.chunked(iter(big), 4_096)]
    assert sizes == [8, 8, 4]
    small = [(i, b"{}") for i in range(1, 10_001)]
    assert [len(c) for c in decoder_process.chunked(iter(small), 4_096)] == [4_096, 4_096, 1_808]
    assert list(decoder_process.chunked(iter([]), 10)) == []


def test_the_child_collects_cycles_between_chunks_and_leaves_the_collector_as_it_was(
    monkeypatch,
):
    # The child runs with the collector off (it walked every chunk's live objects) and
    # collects on its own every _COLLECT_EVERY chunks; run in-process here, over a real pipe.
    monkeypatch.setattr(decoder_process, "_COLLECT_EVERY", 1)
    collections: list[int] = []

    def counted(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(info["generation"])

    read_fd, write_fd = os.pipe()
    messages: list[tuple] = []

    def drain() -> None:
        with suppress(DecoderProcessError):
            while True:
                message, _ = decoder_process._read_message(read_fd)
                messages.append(message)
                if message[0] != "chunk":
                    return

    reader = threading.Thread(target=drain)
    reader.start()
    gc.enable()
    gc.callbacks.append(counted)
    try:
        decoder_process.run_child(
            {
                "fd": write_fd,
                "chunk_records": 2,
                "paths": [str(EVENT_FILES[0])],
                "format_in": "auto",
                "cluster": "c",
                "redact": True,
            }
        )
        enabled_after = gc.isenabled()
    finally:
        gc.callbacks.remove(counted)
        reader.join(timeout=30)
        os.close(read_fd)
    chunks = [m for m in messages if m[0] == "chunk"]
    assert messages[-1][0] == "done"
    assert len(chunks) >= 2
    # Exactly one collection per chunk, all full ones: none set off by allocations.
    assert collections == [2] * len(chunks)
    assert enabled_after
