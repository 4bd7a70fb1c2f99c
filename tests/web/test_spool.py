"""The spool's files: frames, torn tails, segments, and the replay into a real store."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from live import demo_events

from kubetrail.model.normalize import normalize_records
from kubetrail.store import open_store
from kubetrail.store.base import BatchMeta
from kubetrail.store.verify import verify_store
from kubetrail.web.spool import Spool, encode_frame, read_segment
from kubetrail.web.spool_writer import COMMITTER_NICE, _lower_priority, replay


def batch(n: int, seed: int) -> tuple[pa.Table, BatchMeta]:
    records = [(i + 1, json.dumps(e).encode()) for i, e in enumerate(demo_events(n, seed))]
    meta = BatchMeta("prod", "webhook", uuid.uuid4().hex)
    out = normalize_records(records, cluster="prod", source="webhook", batch_id=meta.batch_id)
    return out.table, meta


def test_frames_round_trip_and_a_torn_tail_is_ignored(tmp_path: Path) -> None:
    (t1, m1), (t2, m2) = batch(5, 1), batch(7, 2)
    path = tmp_path / "000000000001.spool"
    second = encode_frame(t2, m2)
    path.write_bytes(encode_frame(t1, m1) + second[: len(second) // 2])
    frames = list(read_segment(path))
    assert [(t.num_rows, m) for t, m in frames] == [(5, m1)]
    assert frames[0][0].equals(t1)
    # A flipped byte inside a whole frame: the CRC stops the read there.
    broken = bytearray(encode_frame(t1, m1) + second)
    broken[-10] ^= 0xFF
    path.write_bytes(bytes(broken))
    assert [m for _, m in read_segment(path)] == [m1]


def test_segments_rotate_and_committed_ones_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.spool", segment_bytes=1)  # every append starts a segment
    frames = [encode_frame(*batch(3, seed)) for seed in (1, 2, 3)]
    numbers = [spool.append([f]) for f in frames]
    assert numbers == [1, 2, 3]
    assert len(list((tmp_path / "s.spool").glob("*.spool"))) == 3
    spool.release(1)
    spool.release(2)
    assert sorted(p.name for p in (tmp_path / "s.spool").glob("*.spool")) == ["000000000003.spool"]
    spool.release(3)
    spool.close()
    assert not list((tmp_path / "s.spool").glob("*.spool"))


def test_a_failed_append_finishes_its_segment(tmp_path: Path) -> None:
    directory = tmp_path / "s.spool"
    spool = Spool(directory)
    (t1, m1), (t2, m2), (t3, m3) = batch(3, 1), batch(3, 2), batch(3, 3)
    assert spool.append([encode_frame(t1, m1)]) == 1
    # The disk fails under the next append after part of its frame reached the file (here:
    # 100 bytes written by hand, then a descriptor that refuses writes, EBADF).
    first = directory / "000000000001.spool"
    with open(first, "ab") as f:
        f.write(encode_frame(t2, m2)[:100])
    active = spool._active
    assert active is not None and active.fd is not None
    os.close(active.fd)
    active.fd = os.open(first, os.O_RDONLY)
    with pytest.raises(OSError):
        spool.append([encode_frame(t2, m2)])
    # The next frames go to a new segment, not after the torn one.
    assert spool.append([encode_frame(t3, m3)]) == 2
    replayed = [m for _, m in Spool(directory).replay()]
    assert replayed == [m1, m3]


def test_replay_commits_leftovers_once_with_their_chain_records(tmp_path: Path) -> None:
    directory = tmp_path / "audit.duckdb.spool"
    batches = [batch(20, seed) for seed in (1, 2, 3)]
    spool = Spool(directory)
    spool.append([encode_frame(t, m) for t, m in batches])
    # The crash: the process dies with the segment written; a copy keeps it for a 2nd replay.
    shutil.copytree(directory, tmp_path / "copy")
    with open_store(tmp_path / "audit.duckdb") as store:
        count = sum(t.num_rows for t, _ in batches)
        assert replay(store, Spool(directory)) == count == store.count("prod")
        assert not list(directory.glob("*.spool"))
        # The same leftovers again (a crash before the segment was deleted): nothing twice.
        assert replay(store, Spool(tmp_path / "copy")) == 0
        assert store.count("prod") == count
        records = store.chain_records("prod")
        assert verify_store(store).ok
    # The three batches were committed as one store batch, with one chain record.
    assert [r.events for r in records] == [count]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_committer_alone_runs_at_a_lower_priority() -> None:
    seen: dict[str, int] = {}

    def committer() -> None:
        _lower_priority()
        seen["thread"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = os.getpriority(os.PRIO_PROCESS, 0)
    thread = threading.Thread(target=committer)
    thread.start()
    thread.join(10)
    assert seen["thread"] == min(19, before + COMMITTER_NICE)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before
