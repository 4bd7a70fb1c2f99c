"""Duplicates counted at admission: pending keys, recent keys, the floor and the store read."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow as pa
from live import demo_events

from kubetrail.model.normalize import normalize_records
from kubetrail.store import open_store
from kubetrail.store.base import BatchMeta
from kubetrail.web.dedupe import KeyIndex
from kubetrail.web.stored_keys import key_lookup, newest_stage_times


def table(events: list[dict[str, object]]) -> pa.Table:
    records = [(i + 1, json.dumps(e).encode()) for i, e in enumerate(events)]
    return normalize_records(records, cluster="prod", source="webhook", batch_id="b").table


def test_repeats_inside_a_batch_and_across_pending_batches(tmp_path: Path) -> None:
    events = demo_events(50, seed=1)
    with open_store(tmp_path / "a.duckdb") as store:
        index = KeyIndex(key_lookup(store), newest_stage_times(store), max_keys=1000)
        first = index.admit("prod", table(events + events[:5]))
        assert (first.duplicates, len(first.hashes)) == (5, 50)
        assert index.admit("prod", table(events)).duplicates == 50
        # Another cluster's identical events are its own.
        assert index.admit("dev", table(events)).duplicates == 0


def test_past_the_floor_the_store_answers(tmp_path: Path) -> None:
    old, new = demo_events(200, seed=2), demo_events(200, seed=3)
    with open_store(tmp_path / "b.duckdb") as store:
        store.write_batch(table(old), BatchMeta("prod", "webhook", uuid.uuid4().hex))
        floors = newest_stage_times(store)
        assert set(floors) == {"prod"}
        # A new process: memory is empty, everything up to the newest stored event is read.
        index = KeyIndex(key_lookup(store), floors, max_keys=1000)
        assert index.admit("prod", table(old)).duplicates == 200
        assert index.admit("prod", table(old[:100] + new)).duplicates == 100


def test_eviction_raises_the_floor_and_keeps_pending_keys(tmp_path: Path) -> None:
    events = demo_events(300, seed=4)
    with open_store(tmp_path / "c.duckdb") as store:
        index = KeyIndex(key_lookup(store), {}, max_keys=20)
        admitted = index.admit("prod", table(events))
        assert index.size <= 20
        # Evicted from memory but still pending (not in the store yet): still a duplicate.
        assert index.admit("prod", table(events)).duplicates == 300
        # Once committed it is no longer pending: the store answers for evicted keys.
        store.write_batch(table(events), BatchMeta("prod", "webhook", uuid.uuid4().hex))
        index.committed(admitted.hashes)
        assert index.admit("prod", table(events)).duplicates == 300
        # And a key neither pending nor stored is new, even below the floor.
        fresh = index.admit("prod", table(demo_events(300, seed=5)))
        assert fresh.duplicates == 0
