"""The tamper-evident trail: canonical event digests and the per-cluster hash chain.

Every committed batch appends a :class:`ChainRecord` to its cluster's chain, in the same
transaction as its events: batch id, count, time range, the SHA-256 of the canonical bytes of
the events it stored (:func:`events_digest`) and the hash of the previous record of the cluster.
Retention and size-cap evictions append records too, stating which batches they removed, so a
removal is part of the chain instead of a hole in it. ``kubetrail verify``
(:mod:`kubetrail.store.verify`) recomputes both.

Canonical bytes of a batch (version 1), hashed with SHA-256::

    b"kubetrail-events-v1\\n"
    count        8 bytes, big-endian
    lengths      count x 4 bytes, big-endian: UTF-8 length of each event's stored JSON
    bytes        the stored JSON of each event, concatenated

with events in the order (request time, auditID, stage), which the store's dedupe key makes
total within a cluster. The lengths make the framing unambiguous (no bytes can move from one
event to the next), and the whole computation runs on Arrow buffers, so ingest stays cheap.

A record's hash is the SHA-256 of its canonical JSON (sorted keys, no spaces, times in ISO
8601), which includes the previous record's hash: changing, removing or inserting a record
breaks every later link.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: The ``prev_hash`` of a cluster's first record.
GENESIS = "0" * 64
#: Columns :func:`events_digest` needs, in this order.
DIGEST_COLUMNS = ("request_received", "audit_id", "stage", "raw")
#: Kinds of chain records.
KIND_BATCH, KIND_RETENTION, KIND_EVICTION = "batch", "retention", "eviction"
REMOVAL_KINDS = (KIND_RETENTION, KIND_EVICTION)

_HEADER = b"kubetrail-events-v1\n"
_SORT_KEYS = [("request_received", "ascending"), ("audit_id", "ascending"), ("stage", "ascending")]


@dataclass(frozen=True)
class ChainRecord:
    """One link of a cluster's chain.

    Attributes:
        cluster: the cluster whose chain this is.
        seq: position in the chain, from 0, without gaps.
        kind: ``batch``, ``retention`` or ``eviction``.
        batch_id: the batch a ``batch`` record covers (``None`` for removals).
        events: events the batch stored, or events the removal deleted.
        first_time: earliest stage time of those events.
        last_time: latest stage time of those events.
        events_sha256: :func:`events_digest` of a batch's events (``None`` for removals).
        detail: what a removal removed and why (``removed_batches``, ``cutoff``, ``actor``…).
        at: when the record was written (UTC).
        prev_hash: ``record_hash`` of the previous record, or :data:`GENESIS`.
        record_hash: SHA-256 of this record's canonical JSON.
    """

    cluster: str
    seq: int
    kind: str
    batch_id: str | None
    events: int
    first_time: datetime | None
    last_time: datetime | None
    events_sha256: str | None
    detail: Mapping[str, Any] = field(default_factory=dict)
    at: datetime | None = None
    prev_hash: str = GENESIS
    record_hash: str = ""

    def _fields(self) -> dict[str, Any]:
        """Every field but the hash, JSON-ready (times in ISO 8601 with ``Z``)."""
        return {
            "cluster": self.cluster,
            "seq": self.seq,
            "kind": self.kind,
            "batch_id": self.batch_id,
            "events": self.events,
            "first_time": chain_time(self.first_time),
            "last_time": chain_time(self.last_time),
            "events_sha256": self.events_sha256,
            "detail": dict(self.detail),
            "at": chain_time(self.at),
            "prev_hash": self.prev_hash,
        }

    def canonical(self) -> bytes:
        """The bytes :attr:`record_hash` is computed over (everything but the hash itself)."""
        body = {"v": 1, **self._fields()}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()

    def computed_hash(self) -> str:
        """The hash this record should carry, recomputed from its fields."""
        return hashlib.sha256(self.canonical()).hexdigest()

    def sealed(self) -> ChainRecord:
        """A copy with :attr:`record_hash` set from the fields."""
        return replace(self, record_hash=self.computed_hash())

    def removed_batches(self) -> list[str]:
        """Batch ids a removal record removed (empty for a batch record)."""
        return [str(b) for b in self.detail.get("removed_batches", [])]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times in ISO 8601 with ``Z``)."""
        return {**self._fields(), "record_hash": self.record_hash}


def chain_time(value: datetime | None) -> str | None:
    """A naive-UTC time as the chain writes it: ISO 8601 with ``Z`` (``None`` stays ``None``)."""
    return None if value is None else value.isoformat() + "Z"


def parse_chain_time(value: Any) -> datetime | None:
    """The naive-UTC time of :func:`chain_time`'s text; ``None`` for anything else."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.removesuffix("Z"))
    except ValueError:
        return None


def events_digest(parts: Iterable[pa.Table]) -> str:
    """SHA-256 of the canonical bytes of a batch's events (see the module docstring).

    Args:
        parts: tables with at least :data:`DIGEST_COLUMNS`, together holding exactly the events
            of one batch, in any order.

    Returns:
        The hex digest.
    """
    tables = [t.select(list(DIGEST_COLUMNS)) for t in parts if t.num_rows]
    if not tables:
        return _finish(hashlib.sha256(_HEADER + (0).to_bytes(8, "big")))
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    raw = table.column("raw")
    if raw.type != pa.string():
        raw = raw.cast(pa.string())
    order = pc.sort_indices(table.select(["request_received", "audit_id", "stage"]), _SORT_KEYS)
    lengths = pc.take(pc.fill_null(pc.binary_length(raw), 0), order).to_numpy(zero_copy_only=False)
    digest = hashlib.sha256(_HEADER)
    digest.update(len(lengths).to_bytes(8, "big"))
    digest.update(lengths.astype(">u4").tobytes())
    chunks = raw.chunks if isinstance(raw, pa.ChunkedArray) else [raw]
    for view in _in_order(chunks, order.to_numpy()):
        digest.update(view)
    return _finish(digest)


def _in_order(chunks: list[pa.Array], order: np.ndarray) -> Iterator[memoryview]:
    """The values of the chunks in ``order`` (global row numbers), as few views as possible.

    Rows that follow each other in ``order`` and in storage form one run, hashed as one slice
    of the chunk's buffer: no copy, and one ``update`` per run instead of per event (a batch
    written in stage-time order is mostly in request-time order already).
    """
    starts = np.cumsum([0] + [len(c) for c in chunks])
    chunk_of = np.searchsorted(starts, order, side="right") - 1
    breaks = np.flatnonzero((np.diff(order) != 1) | (np.diff(chunk_of) != 0)) + 1
    firsts = np.concatenate(([0], breaks))
    lasts = np.concatenate((breaks, [len(order)])) - 1
    offsets = [_offsets(c) for c in chunks]
    # Byte range of every row within its chunk's buffer, looked up for whole runs at once.
    lo = np.concatenate([o[:-1] for o in offsets])[order[firsts]].tolist()
    hi = np.concatenate([o[1:] for o in offsets])[order[lasts]].tolist()
    values = [memoryview(c.buffers()[2] or b"") for c in chunks]
    for c, start, end in zip(chunk_of[firsts].tolist(), lo, hi, strict=True):
        yield values[c][start:end]


def _offsets(array: pa.Array) -> np.ndarray:
    start = array.offset
    return np.frombuffer(array.buffers()[1], dtype=np.int32)[start : start + len(array) + 1]


def _finish(digest: Any) -> str:
    return str(digest.hexdigest())
