"""The hash chain on ClickHouse: one chain per (cluster, writer), records keyed by event keys.

Several stateless collectors write the same cluster at once and ClickHouse has no transactions
to serialise them on one chain, so each *writer* (one :class:`ClickHouseStore` object: a
collector process, or one retention run) keeps its own chain per cluster. Its id is made at
start; its first record links to :data:`~kubetrail.store.integrity.GENESIS`, every later one to
the record before it, and the sequence numbers run 0, 1, 2, … without gaps. ``verify`` checks
every chain and that the chains together cover every stored event.

A batch record covers the batch's events by **key** (cluster, auditID, stage, request time) and
**content** (the stored JSON), never by physical row or ``batch_id``: two collectors may both
store a retried batch (check-before-insert races), ClickHouse keeps one copy (insert tokens,
``ReplacingMergeTree`` merges), and whichever copy survives must satisfy both records. So a
record holds the batch's keys (Arrow IPC, zstd, base64 in ``keys``) and the SHA-256 of

    b"kubetrail-events-ch-v1\\n"
    bytes        the stored JSON of each event, in (request time, auditID, stage) order
    lengths      the UTF-8 length of each, 4 bytes big-endian, in the same order
    count        8 bytes, big-endian

(the embedded store's version 1 with the framing moved after the bytes, so that ``verify`` can
hash a cluster's events as they stream out of ClickHouse in key order, keeping only their
lengths; the lengths and the count still make the split unambiguous). The record covers every
event of the batch, including those found already stored with the same JSON: a collector that
stored the events and died before its record is healed by the retry's record. An event found
stored with other JSON under the same key (the same request exported as v1 and as v1beta1) is
left to the record of the batch that stored it.

The record depends only on the batch, not on what the server stores, so
:meth:`ClickHouseStore.write_batches` sends it at the same time as the events (one round trip
per batch instead of two; the batch is acknowledged only when both INSERTs succeeded). A writer
that dies between the two leaves either events no record covers (``verify``:
``events_outside_chain``) or a record whose events are missing (``events_removed``); the
sender's retry of the unacknowledged batch stores both and heals either.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
import uuid
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .base import BatchMeta
from .integrity import GENESIS, KIND_BATCH, ChainRecord, _offsets, chain_time

if TYPE_CHECKING:
    from .clickhouse import ClickHouseStore

CHAIN_TABLE = "chain"
HEADER = b"kubetrail-events-ch-v1\n"
_SORT_KEYS = [("request_received", "ascending"), ("audit_id", "ascending"), ("stage", "ascending")]
_COLUMNS = (
    "cluster",
    "writer",
    "seq",
    "kind",
    "batch_id",
    "events",
    "first_time",
    "last_time",
    "events_sha256",
    "detail",
    "written_at",
    "prev_hash",
    "record_hash",
    "keys",
)
_CHAIN_COLUMNS = """    cluster LowCardinality(String),
    writer String,
    seq UInt64,
    kind LowCardinality(String),
    batch_id Nullable(String),
    events UInt64,
    first_time Nullable(DateTime64(6, 'UTC')),
    last_time Nullable(DateTime64(6, 'UTC')),
    events_sha256 Nullable(String),
    detail String,
    written_at DateTime64(6, 'UTC'),
    prev_hash String,
    record_hash String,
    keys String CODEC(ZSTD(3))"""

_TYPE_NAMES = [
    line.strip().rstrip(",").split(" ", 1)[1].replace(" CODEC(ZSTD(3))", "")
    for line in _CHAIN_COLUMNS.splitlines()
]


def chain_ddl(database: str, cluster: str | None = None) -> str:
    """``CREATE TABLE`` of the chain table (idempotent).

    On a ClickHouse cluster the table is replicated to every node as one group (like ``meta``):
    it is small, and every node must see every chain.
    """
    if cluster:
        engine = "ReplicatedMergeTree('/clickhouse/tables/{database}/chain', '{replica}')"
        on = f" ON CLUSTER `{cluster}`"
    else:
        engine, on = "MergeTree", ""
    return (
        f"CREATE TABLE IF NOT EXISTS `{database}`.{CHAIN_TABLE}{on} (\n{_CHAIN_COLUMNS}\n)\n"
        f"ENGINE = {engine}\nORDER BY (cluster, writer, seq)"
    )


# -- digests and keys ---------------------------------------------------------------------------


def events_digest(table: pa.Table) -> str:
    """SHA-256 of a batch's events in the ClickHouse chain's canonical form (module docstring).

    Hashes slices of the Arrow buffers in place: no copy of the JSON, even out of order.

    Args:
        table: the batch's events with ``request_received``, ``audit_id``, ``stage``, ``raw``.
    """
    order = pc.sort_indices(table.select(["request_received", "audit_id", "stage"]), _SORT_KEYS)
    digest = StreamDigest()
    digest.update(Values(table.column("raw")), order.to_numpy())
    return digest.hexdigest()


class Values:
    """Where each value of a string column lies in its Arrow buffers, worked out once, so that
    subsets of the rows can be hashed in place (``verify`` hashes many records per block)."""

    def __init__(self, column: pa.Array | pa.ChunkedArray) -> None:
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        chunks = [_as_binary(c) for c in chunks if len(c)]
        offsets = [_offsets(c) for c in chunks]
        empty = np.empty(0, np.int64)
        self.chunk_of = np.concatenate(
            [np.full(len(c), i) for i, c in enumerate(chunks)] or [empty]
        )
        self.lo = np.concatenate([o[:-1] for o in offsets] or [empty]).astype(np.int64)
        self.hi = np.concatenate([o[1:] for o in offsets] or [empty]).astype(np.int64)
        self.buffers = [memoryview(c.buffers()[2] or b"") for c in chunks]

    def views(self, rows: np.ndarray) -> Iterator[memoryview]:
        """The bytes of ``rows`` in that order: one slice per run of adjacent rows, no copy."""
        chunk = self.chunk_of[rows]
        breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(chunk) != 0)) + 1
        firsts = np.concatenate(([0], breaks))
        lasts = np.concatenate((breaks, [len(rows)])) - 1
        starts, ends = self.lo[rows[firsts]].tolist(), self.hi[rows[lasts]].tolist()
        for c, start, end in zip(chunk[firsts].tolist(), starts, ends, strict=True):
            yield self.buffers[c][start:end]

    def lengths(self, rows: np.ndarray) -> np.ndarray:
        """The byte length of each of ``rows``."""
        return self.hi[rows] - self.lo[rows]


class StreamDigest:
    """The canonical digest of events fed in order, a few at a time (``verify`` streams)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256(HEADER)
        self._lengths: list[np.ndarray] = []
        self.count = 0

    def update(self, values: Values, rows: np.ndarray) -> None:
        """Add the events at ``rows`` (positions in ``values``, in key order)."""
        if len(rows) == 0:
            return
        for view in values.views(rows):
            self._sha.update(view)
        self._lengths.append(values.lengths(rows).astype(">u4"))
        self.count += len(rows)

    def hexdigest(self) -> str:
        """The digest of everything added."""
        sha = self._sha.copy()
        for lengths in self._lengths:
            sha.update(lengths.tobytes())
        sha.update(self.count.to_bytes(8, "big"))
        return sha.hexdigest()


def _as_binary(chunk: pa.Array) -> pa.Array:
    if chunk.null_count:
        chunk = pc.fill_null(chunk, "" if pa.types.is_string(chunk.type) else b"")
    if chunk.type in (pa.large_string(), pa.large_binary()):
        chunk = chunk.cast(pa.binary())
    return chunk


def encode_keys(table: pa.Table) -> str:
    """The batch's event keys, compact: Arrow IPC (zstd) of auditID, stage, request µs; base64."""
    keys = pa.table(
        {
            "audit_id": table.column("audit_id").cast(pa.string()),
            "stage": table.column("stage").cast(pa.string()),
            "t": table.column("request_received").cast(pa.int64()),
        }
    )
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, keys.schema, options=options) as writer:
        writer.write_table(keys)
    return base64.b64encode(sink.getvalue().to_pybytes()).decode()


def decode_keys(text: str) -> pa.Table:
    """The keys :func:`encode_keys` wrote (``audit_id``, ``stage``, ``t``).

    Raises:
        ValueError: the text is not such keys.
    """
    try:
        with pa.ipc.open_stream(base64.b64decode(text.encode(), validate=True)) as reader:
            table = reader.read_all()
    except (pa.ArrowInvalid, ValueError, TypeError) as exc:
        raise ValueError(f"unreadable keys: {exc}") from exc
    if table.column_names != ["audit_id", "stage", "t"]:
        raise ValueError("unreadable keys: unexpected columns")
    return table


def key_strings(audit_id: Any, stage: Any, micros: Any) -> pa.Array:
    """One string per event key (auditID, stage, request µs), for set lookups."""
    return pc.binary_join_element_wise(
        pc.cast(audit_id, pa.string()),
        pc.cast(stage, pa.string()),
        pc.cast(micros, pa.int64()).cast(pa.string()),
        "\x1f",
    )


def keys_sha256(text: str) -> str:
    """SHA-256 of a record's stored keys, kept in its hashed ``detail``."""
    return hashlib.sha256(text.encode()).hexdigest()


# -- writing ------------------------------------------------------------------------------------


@dataclass
class StoredRecord:
    """A chain record as stored, with its writer and keys (``keys`` may be empty)."""

    writer: str
    record: ChainRecord
    keys: str


class ChainWriter:
    """One writer's chains (one per cluster) on one ClickHouse store; thread-safe.

    Args:
        store: the store written to.
        prefix: what the writer id starts with (``collector``, ``retention``).
    """

    def __init__(self, store: ClickHouseStore, prefix: str = "collector") -> None:
        self.store = store
        self.writer = f"{prefix}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._heads: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()
        ensure_table(store)

    def append(
        self,
        *,
        cluster: str,
        kind: str,
        batch_id: str | None,
        events: int,
        first_time: datetime | None,
        last_time: datetime | None,
        events_sha256: str | None,
        detail: Mapping[str, Any],
        keys: str = "",
        at: datetime | None = None,
    ) -> ChainRecord:
        """Seal the next record of ``cluster``'s chain of this writer and insert it.

        The head advances only once the INSERT succeeded: a failed insert leaves no gap.
        """
        with self._lock:
            seq, prev = self._heads.get(cluster, (0, GENESIS))
            full = {**detail, "writer": self.writer}
            if keys:
                full["keys_sha256"] = keys_sha256(keys)
            record = ChainRecord(
                cluster=cluster,
                seq=seq,
                kind=kind,
                batch_id=batch_id,
                events=events,
                first_time=first_time,
                last_time=last_time,
                events_sha256=events_sha256,
                detail=full,
                at=at or datetime.now(UTC).replace(tzinfo=None),
                prev_hash=prev,
            ).sealed()
            insert(self.store, [StoredRecord(self.writer, record, keys)])
            self._heads[cluster] = (seq + 1, record.record_hash)
            return record


_WRITERS: weakref.WeakKeyDictionary[Any, ChainWriter] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


def writer_of(store: ClickHouseStore) -> ChainWriter:
    """The collector writer of a store object (made, with its id, at the first batch)."""
    with _WRITERS_LOCK:
        found = _WRITERS.get(store)
        if found is None:
            found = _WRITERS[store] = ChainWriter(store)
        return found


def record_batch(store: ClickHouseStore, meta: BatchMeta, table: pa.Table) -> ChainRecord | None:
    """Append the record of a batch just written: its keys and the digest of its events.

    Called by :meth:`ClickHouseStore.write_batches` after the INSERT, with every event of the
    batch (one per key), stored now or found stored already with the same JSON (see the
    module docstring).
    """
    if table.num_rows == 0:
        return None
    stage_times = table.column("stage_time")
    requests = table.column("request_received")
    keys = encode_keys(table)
    detail = {
        "source": meta.source,
        "request_first": chain_time(pc.min(requests).as_py()),
        "request_last": chain_time(pc.max(requests).as_py()),
    }
    return writer_of(store).append(
        cluster=meta.cluster,
        kind=KIND_BATCH,
        batch_id=meta.batch_id,
        events=table.num_rows,
        first_time=pc.min(stage_times).as_py(),
        last_time=pc.max(stage_times).as_py(),
        events_sha256=events_digest(table),
        detail=detail,
        keys=keys,
    )


def ensure_table(store: ClickHouseStore) -> None:
    """Create the chain table when missing: ``store init`` creates it with the other tables;
    a store made before the chain gets it from its first collector."""
    if table_exists(store):
        return
    with _translated("cannot create the chain table"):
        store._client.command(chain_ddl(store.database, store.cluster))


def table_exists(store: ClickHouseStore) -> bool:
    """Whether the store has the chain table."""
    with _translated("cannot read the chain"):
        found = store._client.command(f"EXISTS TABLE `{store.database}`.{CHAIN_TABLE}")
    return str(found) == "1"


def insert(store: ClickHouseStore, rows: list[StoredRecord]) -> None:
    """Insert stored records as they are (also what the tamper tests use to forge)."""
    values = []
    for row in rows:
        r = row.record
        values.append(
            [
                r.cluster,
                row.writer,
                r.seq,
                r.kind,
                r.batch_id,
                r.events,
                _aware(r.first_time),
                _aware(r.last_time),
                r.events_sha256,
                json.dumps(dict(r.detail), sort_keys=True, default=str),
                _aware(r.at),
                r.prev_hash,
                r.record_hash,
                row.keys,
            ]
        )
    with _translated("cannot write the chain record"):
        # With the types given, clickhouse-connect skips a DESCRIBE round trip per insert.
        store._client.insert(
            f"`{store.database}`.{CHAIN_TABLE}",
            values,
            column_names=list(_COLUMNS),
            column_type_names=_TYPE_NAMES,
        )


# -- reading ------------------------------------------------------------------------------------


def read_records(
    store: ClickHouseStore, cluster: str, *, with_keys: bool = True
) -> list[StoredRecord]:
    """Every chain record of a cluster, of every writer, by (writer, seq); not checked."""
    if not table_exists(store):
        return []
    columns = ", ".join(c if c != "keys" or with_keys else "'' AS keys" for c in _COLUMNS)
    with _translated("cannot read the chain"):
        rows = store._client.query(
            f"SELECT {columns} FROM `{store.database}`.{CHAIN_TABLE} "
            "WHERE cluster = {cluster:String} ORDER BY writer, seq",
            parameters={"cluster": cluster},
            settings={"final": 0},
        ).result_rows
    out = []
    for row in rows:
        try:
            detail = json.loads(row[9]) if row[9] else {}
        except ValueError:
            detail = {"unreadable": str(row[9])}
        if not isinstance(detail, dict):
            detail = {"unreadable": detail}
        record = ChainRecord(
            cluster=row[0],
            seq=int(row[2]),
            kind=row[3],
            batch_id=row[4],
            events=int(row[5]),
            first_time=_naive(row[6]),
            last_time=_naive(row[7]),
            events_sha256=row[8],
            detail=detail,
            at=_naive(row[10]),
            prev_hash=row[11],
            record_hash=row[12],
        )
        out.append(StoredRecord(str(row[1]), record, str(row[13] or "")))
    return out


def chain_clusters(store: ClickHouseStore) -> list[str]:
    """Clusters with a chain or with stored events."""
    sql = f"SELECT DISTINCT cluster FROM `{store.database}`.events"
    if table_exists(store):
        sql += f" UNION DISTINCT SELECT DISTINCT cluster FROM `{store.database}`.{CHAIN_TABLE}"
    with _translated("cannot read the clusters"):
        rows = store._client.query(sql, settings={"final": 0}).result_rows
    return sorted({str(r[0]) for r in rows})


def events_ttl(store: ClickHouseStore) -> str | None:
    """The TTL of the events table (``store init --retention``), or ``None``."""
    with _translated("cannot read the events table's definition"):
        rows = store._client.query(
            "SELECT create_table_query FROM system.tables "
            "WHERE database = {db:String} AND name = {name:String}",
            parameters={
                "db": store.database,
                "name": "events_local" if store.cluster else "events",
            },
        ).result_rows
    if not rows:
        return None
    text = str(rows[0][0])
    start = text.find(" TTL ")
    if start < 0:
        return None
    end = text.find(" SETTINGS ", start)
    return text[start + 1 : end if end > 0 else None].strip()


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _naive(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _translated(what: str) -> Any:
    from .clickhouse import _translated as translated

    return translated(what)
