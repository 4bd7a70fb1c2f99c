"""Duplicates counted at admission, before a batch reaches the store.

The spool answers 200 before the store has the batch, so the ``duplicates`` of the answer
cannot come from the store's write. Only this process writes the store file, so the set of
keys "in the store or in the spool" is known here exactly:

* **pending**: the keys of spooled batches not yet committed (bounded by the spool's size);
* **recent**: the keys stored or spooled with a stage time after the cluster's *floor*, in
  one-second buckets of stage time, at most ``max_keys`` of them; when full, the oldest
  bucket is dropped and the floor moves up to its end;
* **the store**, read only for events at or before the floor (after a restart, the floor is
  the newest stored stage time, so a batch the API server retries across a restart is read
  back; fresh events are newer and need no read).

The key is the store's (cluster, auditID, stage, requestReceivedTimestamp), found in the bucket
of the event's stage time: a re-delivered event is byte-identical (see ``store/duckdb.py``).
Keys are kept as 64-bit hashes; two different keys sharing a hash would make the answer count
a new event as a duplicate (odds about n/2^64 per event); the store still stores it, and the
committer counts any difference between the answer and the store's own count
(``kubetrail_ingest_duplicate_mismatch_total``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

#: Reads the keys of events already stored: (cluster, audit ids, lowest and highest stage
#: time in µs) → set of (audit_id, stage, request_received µs).
StoreLookup = Callable[[str, list[str], int, int], set[tuple[str, str, int]]]

_MICROS = 1_000_000


@dataclass
class Admitted:
    """What admission found in one batch."""

    duplicates: int
    #: Hashes of the batch's new keys (pending until the batch commits).
    hashes: list[int] = field(default_factory=list)


@dataclass
class _Recent:
    floor: int | None  # µs; None: nothing stored for this cluster
    buckets: dict[int, set[int]] = field(default_factory=dict)


class KeyIndex:
    """The keys of the store and the spool, for counting duplicates at admission.

    Args:
        lookup: reads stored keys for events at or before a cluster's floor.
        floors: newest stored stage time (µs) per cluster, when the server starts.
        max_keys: most recent keys kept in memory (pending ones are kept apart, unbounded
            here because the spool bounds them).
    """

    def __init__(self, lookup: StoreLookup, floors: dict[str, int], max_keys: int) -> None:
        self.lookup = lookup
        self.max_keys = max_keys
        self.size = 0
        self._recent = {c: _Recent(floor) for c, floor in floors.items()}
        self._pending: Counter[int] = Counter()
        self._lock = threading.Lock()

    def admit(self, cluster: str, table: pa.Table) -> Admitted:
        """Count the batch's duplicates and record its new keys as pending.

        Called from one thread at a time (the spool's appender), so a retry can never slip
        between another copy's check and record.
        """
        ids = table.column("audit_id").to_pylist()
        stages = table.column("stage").to_pylist()
        received = table.column("request_received").cast(pa.int64()).to_pylist()
        times = table.column("stage_time").cast(pa.int64()).to_pylist()
        recent = self._recent.setdefault(cluster, _Recent(None))
        floor = recent.floor
        old = [i for i, t in enumerate(times) if floor is not None and t <= floor]
        seen: set[int] = set()
        admitted = Admitted(0)
        # The store is read under the lock: the committer removes a batch's keys from pending
        # only after its commit, so a key is always either pending or readable in the store.
        with self._lock:
            stored: set[tuple[str, str, int]] = set()
            if old:  # events the memory no longer covers: ask the store
                stored = self.lookup(
                    cluster,
                    sorted({ids[i] for i in old}),
                    min(times[i] for i in old),
                    max(times[i] for i in old),
                )
            for audit_id, stage, req, when in zip(ids, stages, received, times, strict=True):
                key = hash((cluster, audit_id, stage, req))
                bucket = when // _MICROS
                duplicate = key in seen or self._pending[key] > 0
                if not duplicate:
                    if floor is not None and when <= floor:
                        duplicate = (audit_id, stage, req) in stored
                    else:
                        duplicate = key in recent.buckets.get(bucket, ())
                seen.add(key)
                if duplicate:
                    admitted.duplicates += 1
                    continue
                admitted.hashes.append(key)
                self._pending[key] += 1
                if floor is None or when > floor:
                    recent.buckets.setdefault(bucket, set()).add(key)
                    self.size += 1
            self._evict()
        return admitted

    def committed(self, hashes: list[int]) -> None:
        """The batch holding these keys is in the store: they are no longer pending."""
        with self._lock:
            for key in hashes:
                left = self._pending[key] - 1
                if left > 0:
                    self._pending[key] = left
                else:
                    del self._pending[key]

    forget = committed  # a batch that failed to spool is dropped the same way

    def _evict(self) -> None:
        while self.size > self.max_keys:
            recent = max(self._recent.values(), key=lambda r: len(r.buckets))
            if not recent.buckets:
                return
            oldest = min(recent.buckets)
            self.size -= len(recent.buckets.pop(oldest))
            end = (oldest + 1) * _MICROS - 1
            recent.floor = end if recent.floor is None else max(recent.floor, end)
