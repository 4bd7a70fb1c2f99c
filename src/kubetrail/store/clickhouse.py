"""The scale-out store: a ClickHouse server or cluster, over HTTP with clickhouse-connect.

Many stateless collectors write to it and every query runs there; the tables are described in
:mod:`kubetrail.store.clickhouse_schema`.

Deduplication on (cluster, auditID, stage, request time) is exact by construction, so reads
run without ``FINAL`` by default (docs/scale-out.md, "Deduplication"):

1. Before inserting, a collector asks which keys of its batch are already stored (the primary
   key narrows the lookup to the batch's cluster and time range, the bloom filter to its auditIDs)
   and inserts only the others. This covers re-ingested files and batches retried after an
   earlier write completed, and makes :class:`WriteResult` exact when collectors do not race.
2. The new rows go as one INSERT per piece, a piece being the rows of one partition (day) and,
   on a cluster, one shard, each with an ``insert_deduplication_token`` of its own keys
   (:mod:`kubetrail.store.clickhouse_pieces`). A piece is one part, visible whole or not at
   all, so collectors racing on a retried batch produce the same pieces under the same tokens,
   whatever each of their checks saw, and ClickHouse keeps one block of each
   (``non_replicated_deduplication_window`` / ``replicated_deduplication_window``).
3. ``events`` is a ``ReplacingMergeTree`` whose sorting key is the deduplication key: the rare
   copies that pass both (the same event in two differently cut batches written at the same
   moment) disappear when parts merge, and ``exact_reads=True`` reads with ``FINAL`` (setting
   ``final = 1``) so that they are never counted even before.

ClickHouse has no multi-statement transactions: a batch whose events span several days is
several parts. A failed write may leave some pieces of a batch, which the retry completes
without duplicates (layers 1 and 2).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.exceptions import ClickHouseError

from ..errors import ConfigError, StoreError
from ..model.rawbatch import RAW_SCHEMA
from ..model.schema import COLUMN_NAMES, EVENT_SCHEMA
from . import clickhouse_chain, clickhouse_raw
from .base import EVENTS_TABLE, BatchMeta, StoreStats, WriteResult
from .clickhouse_arrow import bind_positional, empty_arrow, to_arrow
from .clickhouse_pieces import (
    Piece,
    Shards,
    cut,
    key_strings,
    keys_table,
    read_shards,
    shard_lookup,
    shards_of_rows,
)
from .clickhouse_schema import BATCH_COLUMNS, SCHEMA_VERSION, retention_ddl, schema_ddl
from .duckdb import _RAW_KEY, _first_of_each_key

#: Settings of reads with ``exact_reads`` (and of ``verify``): FINAL everywhere. Copies of an
#: event always share a daily partition (the request time is in the key): FINAL need not merge
#: across partitions.
EXACT_READ_SETTINGS = {"final": 1, "do_not_merge_across_partitions_select_final": 1}
#: Settings of reads without ``exact_reads`` (the default).
READ_SETTINGS = {"final": 0}
_NAME = re.compile(r"[A-Za-z0-9_]+")
_STAGE_ORDER = "indexOf(['RequestReceived','ResponseStarted','ResponseComplete','Panic'], stage)"
_EXPORT_ROWS = 10_000


def _ts(value: datetime) -> str:
    return value.isoformat(sep=" ", timespec="microseconds")


class ClickHouseStore:
    """A :class:`~kubetrail.store.base.Store` on a ClickHouse server or cluster.

    Args:
        url: the HTTP(S) endpoint, e.g. ``http://clickhouse:8123``.
        database: the database of kubetrail's tables (created when ``create`` is true).
        cluster: the ``remote_servers`` cluster: tables are then ``Distributed`` over replicated
            local tables (see ``kubetrail store init``); ``None`` for a single server.
        username: the ClickHouse user; default ``default``.
        password: its password; default empty.
        retention: days to keep per kubetrail cluster, applied as TTL rules on creation.
        create: create the schema when missing; when false, it must exist already.
        exact_reads: read with ``FINAL``, so that the rare copies layers 1 and 2 let through
            are never counted, even before parts merge (see above); off by default.
        settings: extra ClickHouse settings for the session.
    """

    dialect = "clickhouse"
    #: Decoded chunks the pipeline queues ahead of the writer (:mod:`kubetrail.pipeline`; 1
    #: by default): while the server stores a batch, decoding runs on into the next one
    #: (1.33x the events/s through one collector, docs/scale-out.md "Run I").
    write_queue_chunks = 8
    #: The pipeline sends raw batches (:meth:`write_raw_batches`) only from its decoding child
    #: (large imports, :mod:`kubetrail.decoder_process`): decoded in the collector's own
    #: process, the server extracting the columns was no faster (docs/scale-out.md, "Run I").
    raw_batches_in_process = False

    def __init__(
        self,
        url: str = "http://127.0.0.1:8123",
        *,
        database: str = "kubetrail",
        cluster: str | None = None,
        username: str = "default",
        password: str = "",
        retention: Mapping[str, int] | None = None,
        create: bool = True,
        exact_reads: bool = False,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        for name in (database, cluster or "x"):
            if not _NAME.fullmatch(name):
                raise ConfigError(
                    f"'{name}': ClickHouse database and cluster names are [A-Za-z0-9_]"
                )
        parts = urlsplit(url if "://" in url else f"http://{url}")
        self.url, self.database, self.cluster = url, database, cluster
        with _translated(f"cannot connect to ClickHouse at {url}"):
            self._client = clickhouse_connect.get_client(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or (8443 if parts.scheme == "https" else 8123),
                secure=parts.scheme == "https",
                username=username,
                password=password,
                settings=dict(settings or {}),
                autogenerate_session_id=False,  # stateless: collectors share the client safely
            )
        self.read_settings = dict(EXACT_READ_SETTINGS if exact_reads else READ_SETTINGS)
        # Raw pieces' bodies are compressed as insert_arrow compresses the event tables.
        written = self._client.write_compression
        self._body_compression = written if written in ("lz4", "zstd") else None
        self._side = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kubetrail-ch-write")
        self._inserts = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kubetrail-ch-piece")
        if create:
            self.create_schema(retention or {})
        self._check_version()
        self._shards: Shards | None = None  # read at the first write (see _shard_map)
        self._shards_lock = threading.Lock()
        # Compiled SQL names ``events`` unqualified: the database travels with every request.
        self._client.database = database

    # -- schema -------------------------------------------------------------------------------

    def create_schema(self, retention: Mapping[str, int] | None = None) -> None:
        """Create the database and tables when missing, and record the schema version.

        A store that exists is left as it is (collectors start without DDL, which on a cluster
        is ON CLUSTER work); change its retention with :meth:`set_retention`.
        """
        with _translated("cannot create the schema"):
            if str(self._client.command(f"EXISTS TABLE {self.database}.meta")) == "1":
                return
            for statement in schema_ddl(self.database, cluster=self.cluster, retention=retention):
                self._client.command(statement)

    def set_retention(self, retention: Mapping[str, int]) -> None:
        """Apply per-cluster retention in days (``*``: every other cluster; ``{}``: forever)."""
        sql = retention_ddl(self.database, retention, cluster=self.cluster)
        with _translated("cannot change the retention"):
            self._client.command(sql)

    def _check_version(self) -> None:
        with _translated(f"cannot read the schema version in {self.database}"):
            rows = self._client.query(
                f"SELECT value FROM {self.database}.meta WHERE key = 'schema_version'"
            ).result_rows
        found = rows[0][0] if rows else "none"
        if found != str(SCHEMA_VERSION):
            raise StoreError(
                f"{self.url}/{self.database}: schema version {found}, "
                f"this kubetrail reads {SCHEMA_VERSION}"
            )

    # -- writes -------------------------------------------------------------------------------

    def write_batch(self, table: pa.Table, meta: BatchMeta) -> WriteResult:
        """Store the new events of one batch; see :meth:`Store.write_batch` and the module notes."""
        return self.write_batches([table], meta)

    def write_batches(self, tables: Iterable[pa.Table], meta: BatchMeta) -> WriteResult:
        """Store several tables as one batch: one duplicate check, one INSERT per piece.

        ClickHouse wants few large inserts (each makes a part on disk, merged later), so the
        tables of a batch (the pipeline's chunks, at most ``BATCH_RECORDS`` events) are joined.
        """

        def checked(table: pa.Table) -> pa.Table:
            if table.schema != EVENT_SCHEMA:
                raise StoreError("batch does not have the event schema")
            return table

        joined = _joined(tables, checked)
        return self._write(joined, meta, raw=False) if joined is not None else WriteResult(0, 0)

    def write_raw_batches(self, tables: Iterable[pa.Table], meta: BatchMeta) -> WriteResult:
        """Like :meth:`write_batches`, for the fast path's raw batches: the server extracts the
        columns from the raw JSON (:mod:`kubetrail.store.clickhouse_raw`).

        Each table has :data:`~kubetrail.model.rawbatch.RAW_SCHEMA` or the event schema (chunks
        of large events, which took the reference path); of the latter only the raw-batch
        columns are sent, and the server derives the rest from the same JSON by the same rules,
        so that a piece stays one INSERT, one block, one token. Everything else is
        :meth:`write_batches`' own: one duplicate check, the pieces, the chain record and the
        batch row.
        """

        def checked(table: pa.Table) -> pa.Table:
            if table.schema == EVENT_SCHEMA:
                return table.select(RAW_SCHEMA.names)
            if table.schema != RAW_SCHEMA:
                raise StoreError("batch has neither the raw-batch nor the event schema")
            return table

        joined = _joined(tables, checked)
        return self._write(joined, meta, raw=True) if joined is not None else WriteResult(0, 0)

    def _write(self, table: pa.Table, meta: BatchMeta, *, raw: bool) -> WriteResult:
        """Store one batch's rows (event or, with ``raw``, raw-batch tables): the duplicate
        check, the pieces, the chain record and the batch row."""
        received = table.num_rows
        if raw:  # the batch's one cluster is meta's: the key is the rest
            table = _first_of_each_key(table, _RAW_KEY)
        else:
            table = _first_of_each_key(table)
            # The batch id comes from the batch record, as in the embedded store (the pipeline
            # leaves the column empty); verify names batches of unchained events by it. (Raw
            # pieces get it as a parameter of their INSERT.)
            ids = pa.repeat(pa.scalar(meta.batch_id, pa.string()), table.num_rows)
            table = table.set_column(table.schema.get_field_index("batch_id"), "batch_id", ids)
        times = table.column("request_received")
        lo, hi = pc.min(times).as_py(), pc.max(times).as_py()
        # On a cluster, the shards of the batch's auditIDs are asked at the same time as the check.
        lookup = self._lookup_shards(table, meta.cluster)
        with _translated("cannot write the batch"):
            table, whole = self._check_stored(table, meta.cluster, lo, hi)
        stored = table.num_rows
        row = [meta.batch_id, meta.cluster, meta.source, received, stored]
        row += [received - stored, lo, hi, datetime.now(UTC)]
        # The events, the batch row and the chain record are INSERTs, each a round trip and a
        # part on the server. They are sent at once (the record depends on the check, not on
        # the events' INSERT; see clickhouse_chain), so a batch waits for the slowest.
        side = [
            self._side.submit(clickhouse_chain.record_batch, self, meta, whole),
            self._side.submit(self._insert_batch_row, row),
        ]
        try:
            with _translated("cannot write the batch"):
                pieces: list[Piece] | list[RawPiece] = self._cut(table, meta.cluster, lookup)
                if raw:
                    pieces = [RawPiece.of(p, meta) for p in pieces]
                self._insert_pieces(pieces)
        except BaseException:
            wait(side)  # the events' error is the one to report
            raise
        for future in side:
            future.result()
        return WriteResult(stored=stored, duplicates=received - stored)

    def _shard_map(self) -> Shards | None:
        """On a cluster, its shards and weights, read once from the server.

        Pieces go to the shard ``Distributed`` would pick (``clickhouse_pieces``): restart the
        collectors after changing the cluster's shards or weights in ``remote_servers``.

        Raises:
            StoreError: the server does not know the cluster or cannot be asked.
        """
        if self.cluster is None:
            return None
        with self._shards_lock:
            if self._shards is None:
                with _translated(f"cannot read the shards of cluster '{self.cluster}'"):
                    try:
                        self._shards = read_shards(self._client, self.cluster)
                    except ValueError as exc:
                        raise StoreError(f"{self.url}: {exc}") from exc
            return self._shards

    def _lookup_shards(self, table: pa.Table, cluster: str) -> Future[pa.Table] | None:
        """On a cluster: the shard of each auditID of the batch, being asked in the background."""
        shards = self._shard_map()
        if shards is None:
            return None
        ids = table.column("audit_id")
        return self._inserts.submit(shard_lookup, self._client, shards, cluster, ids)

    def _cut(
        self, table: pa.Table, cluster: str, lookup: Future[pa.Table] | None = None
    ) -> list[Piece]:
        """The new rows of a batch as pieces of one partition and shard (``clickhouse_pieces``).

        ``lookup``: the shards of (at least) the rows' auditIDs, from :meth:`_lookup_shards`
        (asked here when missing, on a cluster).
        """
        if table.num_rows == 0:
            return []
        shard_of_rows = None
        if self.cluster is not None:
            lookup = lookup or self._lookup_shards(table, cluster)
            assert lookup is not None
            shard_of_rows = shards_of_rows(table, lookup.result())
        target = f"{self.database}.{'events_local' if self.cluster else EVENTS_TABLE}"
        return cut(table, target=target, cluster=cluster, shard_of_rows=shard_of_rows)

    def _insert_pieces(self, pieces: Sequence[Piece | RawPiece]) -> None:
        """Insert each piece as an INSERT of its own; several at once (a batch over many days).

        Raises:
            ClickHouseError: one of them failed (the others may be stored; a retry completes
                the batch without copies: the check skips stored pieces, tokens drop racing ones).
        """
        if len(pieces) == 1:
            self._insert_piece(pieces[0])
            return
        futures = [self._inserts.submit(self._insert_piece, p) for p in pieces]
        wait(futures)  # all finished before the batch counts as failed or stored
        for future in futures:
            future.result()

    def _insert_piece(self, piece: Piece | RawPiece) -> None:
        if isinstance(piece, RawPiece):
            # Into ``events`` like insert_arrow (on a cluster the Distributed table, which
            # sends the block to the piece's ``insert_shard_id``).
            self._client.command(
                clickhouse_raw.insert_sql(f"{self.database}.{EVENTS_TABLE}"),
                parameters=piece.parameters,
                data=clickhouse_raw.body(piece.piece.table, self._body_compression),
                settings=piece.piece.settings(),
            )
            return
        self._client.insert_arrow(
            EVENTS_TABLE, piece.table, database=self.database, settings=piece.settings()
        )

    def _insert_batch_row(self, row: list[Any]) -> None:
        with _translated("cannot write the batch record"):
            # With the types given, clickhouse-connect skips a DESCRIBE round trip per insert.
            self._client.insert(
                f"{self.database}.batches",
                [row],
                column_names=[name for name, _ in BATCH_COLUMNS],
                column_type_names=[kind for _, kind in BATCH_COLUMNS],
            )

    def _without_stored(
        self, table: pa.Table, cluster: str, lo: datetime, hi: datetime
    ) -> pa.Table:
        """The rows of the batch whose key is not stored yet."""
        return self._check_stored(table, cluster, lo, hi)[0]

    def _check_stored(
        self, table: pa.Table, cluster: str, lo: datetime, hi: datetime
    ) -> tuple[pa.Table, pa.Table]:
        """The rows of the batch whose key is not stored yet, and the rows its record covers.

        The chain record covers the events found stored too, when the stored JSON is the
        batch's own: a retried batch then chains what an interrupted first attempt stored
        (see ``clickhouse_chain``). An event stored earlier with other JSON under the same key
        (the same request exported twice, as v1 and as v1beta1) stays with the record of the
        batch that stored it: this batch stored nothing of it.
        """
        # The whole key on the server: the stored rows of the batch's auditIDs at other stages
        # (a request's earlier stages, stored by the batch before) are not sent back, nor
        # is the hash of their JSON worked out.
        keys = keys_table(table.column("audit_id"), table.column("stage"))
        found = self._client.query_arrow(
            f"SELECT audit_id, stage, toUnixTimestamp64Micro(request_received) AS t, "
            f"lower(hex(SHA256(raw))) AS sha "
            f"FROM {self.database}.{EVENTS_TABLE} "
            "WHERE cluster = {cluster:String} "
            "AND request_received BETWEEN toDateTime64({lo:String}, 6, 'UTC') "
            "AND toDateTime64({hi:String}, 6, 'UTC') "
            "AND (audit_id, stage) IN (SELECT audit_id, stage FROM batch_keys)",
            parameters={"cluster": cluster, "lo": _ts(lo), "hi": _ts(hi)},
            external_data=keys,
            settings={"final": 0},  # any stored copy counts; no need to merge
        )
        if found.num_rows == 0:
            return table, table
        stored = key_strings(
            found.column("audit_id"), found.column("stage"), found.column("t").cast(pa.int64())
        )
        mine = key_strings(
            table.column("audit_id"),
            table.column("stage"),
            table.column("request_received").cast(pa.int64()),
        )
        is_stored = pc.is_in(mine, value_set=pc.unique(stored))
        shas = found.column("sha").to_pylist()
        same = {f"{key}|{sha}" for key, sha in zip(stored.to_pylist(), shas, strict=True)}
        # Only the rows found stored are hashed (usually none; all of a retried batch).
        rows = pc.indices_nonzero(is_stored)
        keys = pc.take(mine, rows).to_pylist()
        raws = pc.take(table.column("raw"), rows).to_pylist()
        other = [
            row
            for row, key, raw in zip(rows.to_pylist(), keys, raws, strict=True)
            if f"{key}|{_sha256(raw)}" not in same
        ]
        new = table.filter(pc.invert(is_stored))
        if not other:
            return new, table
        covered = pc.invert(pc.is_in(pa.array(range(table.num_rows)), pa.array(other)))
        return new, table.filter(covered)

    # -- reads --------------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pa.Table:
        """Run compiled SQL; the result has the embedded store's Arrow types (``clickhouse_arrow``).

        ``params``: a mapping binds ClickHouse's own ``{name:Type}`` placeholders; a sequence
        binds ``?`` placeholders in order, as in the embedded store (see :func:`bind_positional`).
        """
        if params is not None and not isinstance(params, Mapping):
            sql, params = bind_positional(sql, params)
        with _translated("query failed"):
            result = self._client.query(sql, parameters=params or None, settings=self.read_settings)
            if result.column_names:
                return to_arrow(result.column_names, result.column_types, result.result_columns)
            # No rows: the HTTP answer carried no header, so ask for the columns' types.
            described = self._client.query(
                f"DESCRIBE TABLE ({sql})", parameters=params or None
            ).result_rows
            return empty_arrow([(str(r[0]), str(r[1])) for r in described])

    def count(self, cluster: str | None = None) -> int:
        """Number of stored events (all stages, duplicates removed), optionally of one cluster."""
        where, params = _cluster_filter(cluster)
        return int(self._scalar(f"SELECT count() FROM {EVENTS_TABLE}{where}", params))

    def stats(self) -> StoreStats:
        """Events by cluster, stage and verb, and the covered time range."""

        def grouped(column: str) -> dict[str, int]:
            rows = self._rows(
                f"SELECT {column}, count() AS n FROM {EVENTS_TABLE} "
                f"GROUP BY {column} ORDER BY n DESC, {column}"
            )
            return {str(key): int(n) for key, n in rows}

        total, first, last = self._rows(
            f"SELECT count(), min(request_received), max(request_received) FROM {EVENTS_TABLE}"
        )[0]
        if not total:
            first = last = None
        return StoreStats(
            total=int(total),
            by_cluster=grouped("cluster"),
            by_stage=grouped("stage"),
            by_verb=grouped("verb"),
            first=_naive(first),
            last=_naive(last),
        )

    def export(self, cluster: str | None = None) -> Iterator[str]:
        """Yield stored events' JSON in time order (then auditID, then stage order)."""
        where, params = _cluster_filter(cluster)
        sql = (
            f"SELECT raw FROM {EVENTS_TABLE}{where} "
            f"ORDER BY request_received, audit_id, {_STAGE_ORDER}"
        )
        with _translated("export failed"):
            stream = self._client.query_row_block_stream(
                sql,
                parameters=params,
                settings={**self.read_settings, "max_block_size": _EXPORT_ROWS},
            )
            with stream:
                for block in stream:
                    for row in block:
                        yield row[0]

    def delete_older_than(self, cutoff: datetime, cluster: str | None = None) -> int:
        """Remove events received before ``cutoff`` (naive UTC or aware); TTL does this too."""
        if cutoff.tzinfo is not None:
            cutoff = cutoff.astimezone(UTC).replace(tzinfo=None)
        condition = "request_received < toDateTime64({cutoff:String}, 6, 'UTC')"
        params: dict[str, Any] = {"cutoff": _ts(cutoff)}
        if cluster is not None:
            condition += " AND cluster = {cluster:String}"
            params["cluster"] = cluster
        gone = int(self._scalar(f"SELECT count() FROM {EVENTS_TABLE} WHERE {condition}", params))
        if gone:
            table = "events_local" if self.cluster else EVENTS_TABLE
            on = f" ON CLUSTER `{self.cluster}`" if self.cluster else ""
            with _translated("delete failed"):
                self._client.command(
                    f"DELETE FROM {self.database}.{table}{on} WHERE {condition}",
                    parameters=params,
                )
        return gone

    def columns(self) -> tuple[str, ...]:
        """The event columns, in storage order."""
        return COLUMN_NAMES

    def optimize(self) -> None:
        """Merge parts now (``OPTIMIZE ... FINAL``), removing duplicate rows from disk."""
        table = "events_local" if self.cluster else EVENTS_TABLE
        on = f" ON CLUSTER `{self.cluster}`" if self.cluster else ""
        with _translated("optimize failed"):
            self._client.command(f"OPTIMIZE TABLE {self.database}.{table}{on} FINAL")

    def command(self, sql: str) -> None:
        """Run a statement that returns no rows (the alert tables' DDL, ``kubetrail.detect``).

        Raises:
            StoreError: the server refused it.
        """
        with _translated("statement failed"):
            self._client.command(sql)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert plain rows into one of the store's own tables (alerts, their deliveries).

        Raises:
            StoreError: a bad table name, or the server refused the rows.
        """
        if not _NAME.fullmatch(table):
            raise StoreError(f"'{table}' is not a table name")
        with _translated(f"insert into {table} failed"):
            self._client.insert(table, [list(r) for r in rows], column_names=list(columns))

    def close(self) -> None:
        """Close the HTTP connections (the data is already on the server)."""
        self._side.shutdown(wait=True)
        self._inserts.shutdown(wait=True)
        self._client.close()

    def __enter__(self) -> ClickHouseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------------

    def _rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Sequence[Any]]:
        with _translated("query failed"):
            return list(
                self._client.query(sql, parameters=params, settings=self.read_settings).result_rows
            )

    def _scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        rows = self._rows(sql, params)
        return rows[0][0] if rows else None


@dataclass(frozen=True)
class RawPiece:
    """A piece of a raw batch, with the query parameters of its INSERT ... SELECT."""

    piece: Piece
    parameters: dict[str, str]

    @classmethod
    def of(cls, piece: Piece, meta: BatchMeta) -> RawPiece:
        """The piece with the batch's cluster, source and id."""
        params = {"cluster": meta.cluster, "source": meta.source, "batch_id": meta.batch_id}
        return cls(piece, params)


def _cluster_filter(cluster: str | None) -> tuple[str, dict[str, Any] | None]:
    if cluster is None:
        return "", None
    return " WHERE cluster = {cluster:String}", {"cluster": cluster}


def _naive(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn clickhouse-connect's exceptions into :class:`StoreError` at the boundary."""
    try:
        yield
    except ClickHouseError as exc:
        raise StoreError(f"{what}: {exc}") from exc


def _sha256(raw: str | None) -> str:
    """The hex SHA-256 of an event's JSON, as ClickHouse's ``lower(hex(SHA256(raw)))``."""
    return hashlib.sha256((raw or "").encode()).hexdigest()


def _joined(tables: Iterable[pa.Table], checked: Callable[[pa.Table], pa.Table]) -> pa.Table | None:
    """A batch's non-empty tables, each passed through ``checked``, as one table (``None``
    when there are none): ClickHouse wants few large inserts."""
    chunks = [t for t in map(checked, tables) if t.num_rows]
    return pa.concat_tables(chunks) if chunks else None
