"""The embedded store: one DuckDB database file, no server.

DuckDB is a columnar, vectorised engine: group-by queries over tens of millions of rows run
in tens of milliseconds on two cores, and Arrow batches go in and out without copies
(docs/architecture.md has the measurements behind the choice).

Layout:

* ``events``: one row per event and stage, the columns of ``kubetrail.model.schema``; the raw
  JSON column is compressed with zstd (about 10x on audit JSON, against 2.5x for DuckDB's
  default string compression).
* ``batches``: one row per committed batch (id, cluster, source, counts, time range), written
  in the same transaction as its events, so the two always agree.
* ``chain``: the per-cluster hash chain (``kubetrail.store.integrity``): one record per
  committed batch, appended in the batch's transaction, and one per retention or eviction.
* ``meta``: the schema version.

Each batch is one transaction: after a crash the batch is either fully stored or absent.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import StoreError
from ..model.rawbatch import RAW_SCHEMA
from ..model.schema import COLUMN_NAMES, EVENT_SCHEMA
from . import duckdb_chain, duckdb_raw
from .base import EVENTS_TABLE, BatchMeta, StoreStats, WriteResult
from .integrity import DIGEST_COLUMNS, KIND_BATCH, ChainRecord, events_digest

SCHEMA_VERSION = 2
_SQL_TYPES = {
    pa.string(): "VARCHAR",
    pa.list_(pa.string()): "VARCHAR[]",
    pa.int32(): "INTEGER",
    pa.uint64(): "UBIGINT",
    pa.bool_(): "BOOLEAN",
    pa.float64(): "DOUBLE",
    pa.timestamp("us"): "TIMESTAMP",
}
_EXPORT_ROWS = 10_000
#: Rows per row group of the stores kubetrail writes (DuckDB's default: 122,880). A
#: transaction's rows wait uncompressed in memory until a row group fills; at 1.9 KB per
#: demo event a default row group is about 230 MB, more than the import's 96-128 MB limit, so
#: DuckDB spilled it to a temporary file and read it back to compress it at commit. Row groups
#: of 30,720 rows (about 57 MB) are compressed and written while the INSERTs run: 26 % more
#: events per second for the same peak memory (docs/benchmarks.md, "Row groups").
ROW_GROUP_ROWS = 30_720
#: The name the store's file is attached under (see :func:`_connect`).
CATALOG = "kubetrail"
#: Rows of raw batches inserted per statement: a statement's fixed costs (the check for stored
#: rows in its time range) are paid once per 8 k rows, and its Arrow buffers (10 MB of JSON)
#: are the most the writer holds beyond the chain's digest.
RAW_INSERT_ROWS = 8_192
#: Rows per chain record on the fast path (see :meth:`DuckDBStore.write_raw_batches`): the
#: digest holds these rows' JSON until the record is written (16,384 rather than 32,768 took
#: 32 MB off an import's peak, at no measured cost in speed).
RAW_CHAIN_ROWS = 16_384
# The same in bytes, for large events (the counts above are reached first by 1.2 KB events).
_INSERT_BYTES = 24 * 1024 * 1024
_CHAIN_BYTES = 32 * 1024 * 1024


def _connect(path: str, *, read_only: bool, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the store's file, with :data:`ROW_GROUP_ROWS`.

    DuckDB takes a row group size only when it attaches a file, so the connection's own
    database is an empty in-memory one and the file is attached as :data:`CATALOG` and made
    the default (cursors need the same: :meth:`DuckDBStore.cursor`). The size is not kept in
    the file: every kubetrail connection attaches with it, and a file written with another
    size (an older kubetrail, DuckDB's default) is read and extended as it is.
    """
    if path != ":memory:":
        # DuckDB's default next to the file; an in-memory main database would use ./.tmp.
        config = {"temp_directory": f"{path}.tmp", **config}
    con = duckdb.connect(":memory:", config=config)
    try:
        options = f"ROW_GROUP_SIZE {ROW_GROUP_ROWS}" + (", READ_ONLY" if read_only else "")
        # ATTACH takes no parameters: the path is a quoted literal.
        literal = "'" + path.replace("'", "''") + "'"
        con.execute(f"ATTACH {literal} AS {CATALOG} ({options})")
        con.execute(f"USE {CATALOG}")
    except BaseException:
        con.close()
        raise
    return con


def _events_ddl() -> str:
    columns = []
    for field in EVENT_SCHEMA:
        sql_type = _SQL_TYPES[field.type]
        suffix = " USING COMPRESSION zstd" if field.name == "raw" else ""
        columns.append(f"    {field.name} {sql_type}{suffix}")
    return f"CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} (\n" + ",\n".join(columns) + "\n)"


_BATCHES_DDL = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id VARCHAR PRIMARY KEY,
    cluster VARCHAR NOT NULL,
    source VARCHAR,
    received INTEGER NOT NULL,
    stored INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    first_time TIMESTAMP,
    last_time TIMESTAMP,
    committed_at TIMESTAMP NOT NULL
)"""

# No index on audit_id: DuckDB's ART index made one-request lookups 30x faster, but it must be
# pinned in memory at every commit and grows with the table (about 116 bytes per event), so an
# import into a 10 M-event store failed under a 128 MB limit. docs/benchmarks.md has the figures.

_META_DDL = "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)"

# A re-delivered event is byte-identical, so its request time and stage time match too. Looking
# for duplicates only inside the batch's stage-time range lets DuckDB skip every row group
# outside it (zone maps): logs arrive in stage-time order, while the request time of a long
# watch reaches hours back. Duplicates share both times, so the pruning loses none. The same
# auditID at another time is a different request (clients choose Audit-ID), and is kept, so
# no one can hide a request behind an earlier request's auditID.
_INSERT_NEW = f"""
INSERT INTO {EVENTS_TABLE}
SELECT b.* FROM _batch AS b
ANTI JOIN (
    SELECT cluster, audit_id, stage, request_received FROM {EVENTS_TABLE}
    WHERE cluster = $cluster AND stage_time BETWEEN $lo AND $hi
) AS e
ON b.cluster = e.cluster AND b.audit_id = e.audit_id AND b.stage = e.stage
   AND b.request_received = e.request_received
"""


class DuckDBStore:
    """A :class:`~kubetrail.store.base.Store` on one DuckDB file.

    Args:
        path: the database file (created if missing), or ``":memory:"``.
        read_only: open without taking the write lock (for queries from another process).
        memory_limit: DuckDB's memory limit, e.g. ``"1GB"``; ``None`` keeps DuckDB's default.
        threads: worker threads for DuckDB; ``None`` keeps DuckDB's default (one per core).
        checkpoint_threshold: write-ahead-log size that triggers a checkpoint at commit;
            ``None`` keeps DuckDB's default (16 MB).
        chain: extend the hash chain with every batch (default). ``False`` exists for the
            benchmark that measures what the chain costs; ``kubetrail verify`` then reports
            the unchained batches.
    """

    dialect = "duckdb"

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        memory_limit: str | None = None,
        threads: int | None = None,
        checkpoint_threshold: str | None = None,
        chain: bool = True,
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
        self.chain = chain
        config: dict[str, Any] = {}
        if memory_limit:
            config["memory_limit"] = memory_limit
        if threads:
            config["threads"] = threads
        if checkpoint_threshold:
            config["checkpoint_threshold"] = checkpoint_threshold
        with _translated(f"cannot open {self.path}"):
            self._con = _connect(self.path, read_only=read_only, config=config)
        # DuckDB prints a progress bar on stdout for long statements: never in a tool's output.
        _run(self._con, "SET enable_progress_bar = false")
        self._lock = threading.Lock()
        self._heads = duckdb_chain.Heads()
        if not read_only:
            self._create_schema()
        self._check_version()

    def _create_schema(self) -> None:
        with _translated("cannot create the schema"):
            _run(self._con, _events_ddl())
            _run(self._con, _BATCHES_DDL)
            _run(self._con, duckdb_chain.CHAIN_DDL)
            _run(self._con, _META_DDL)
            _run(
                self._con,
                "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                [str(SCHEMA_VERSION)],
            )

    def _check_version(self) -> None:
        with _translated("cannot read the schema version"):
            row = _first(self._con, "SELECT value FROM meta WHERE key = 'schema_version'")
        if row is not None and int(row[0]) == 1 and not self.read_only:
            self._upgrade_from_1()
            return
        if row is None or int(row[0]) != SCHEMA_VERSION:
            found = row[0] if row else "none"
            hint = (
                " (open it once for writing to upgrade it: kubetrail store init --engine duckdb "
                f"--db {self.path})"
                if row is not None and int(row[0]) < SCHEMA_VERSION
                else ""
            )
            raise StoreError(
                f"{self.path}: schema version {found}, this kubetrail reads {SCHEMA_VERSION}" + hint
            )

    def _upgrade_from_1(self) -> None:
        """Version 2 added ``audit_key`` (see ``kubetrail.model.derive``), last in the table.

        DuckDB's ``md5_number_upper`` is the same number as ``derive.audit_key`` (a test keeps
        them equal), so the upgrade runs in SQL, in one transaction.
        """
        with _translated("cannot upgrade the schema to version 2"), self._transaction():
            _run(self._con, f"ALTER TABLE {EVENTS_TABLE} ADD COLUMN audit_key UBIGINT")
            _run(self._con, f"UPDATE {EVENTS_TABLE} SET audit_key = md5_number_upper(audit_id)")
            _run(self._con, "UPDATE meta SET value = '2' WHERE key = 'schema_version'")

    def write_batch(self, table: pa.Table, meta: BatchMeta) -> WriteResult:
        """Store one batch in one transaction; see :meth:`Store.write_batch`."""
        return self.write_batches([table], meta)

    def write_batches(self, tables: Iterable[pa.Table], meta: BatchMeta) -> WriteResult:
        """Store several tables as one batch, in one transaction; see :meth:`Store.write_batches`.

        The tables are inserted as they come, so a large batch never sits whole in memory: a
        transaction of a row group (122,880 rows) or more lets DuckDB write it straight to the
        file instead of through the write-ahead log, about twice as fast.
        """
        with self._lock, _translated("cannot write the batch"), self._transaction():
            tally = _Tally()
            for table in tables:
                tally.add(*self._insert(table, meta))
            self._record_batch(meta, tally)
        return tally.result()

    def write_raw_batches(self, tables: Iterable[pa.Table], meta: BatchMeta) -> WriteResult:
        """Like :meth:`write_batches`, for tables of the fast path's raw batches.

        Each table has either :data:`~kubetrail.model.rawbatch.RAW_SCHEMA` (DuckDB extracts
        the other columns from the raw JSON, :mod:`kubetrail.store.duckdb_raw`) or the event
        schema (records that took the reference path). One transaction, as ever; inside it,
        every :data:`RAW_CHAIN_ROWS` rows close a batch of their own (its own ``batches`` row
        and chain record, ``meta.batch_id`` for the first), so that the digest needs only
        that many rows' JSON in memory while the transaction grows to a whole row group.
        """
        with self._lock, _translated("cannot write the batch"), self._transaction():
            total = _Tally()
            tally = _Tally()
            current = meta
            pending: list[pa.Table] = []
            pending_bytes = batch_bytes = 0
            for table in tables:
                batch_bytes += table.nbytes
                if table.schema != RAW_SCHEMA:
                    # Input order decides which of two equal keys is kept: earlier rows first.
                    tally.add(*self._insert_raw(pending, current))
                    tally.add(*self._insert(table, current))
                    pending_bytes = 0
                else:
                    pending.append(table)
                    pending_bytes += table.nbytes
                    rows = sum(t.num_rows for t in pending)
                    if rows >= RAW_INSERT_ROWS or pending_bytes >= _INSERT_BYTES:
                        tally.add(*self._insert_raw(pending, current))
                        pending_bytes = 0
                if tally.received >= RAW_CHAIN_ROWS or batch_bytes >= _CHAIN_BYTES:
                    tally.add(*self._insert_raw(pending, current))
                    pending_bytes = batch_bytes = 0
                    self._record_batch(current, tally)
                    total.merge(tally)
                    tally = _Tally()
                    current = BatchMeta(meta.cluster, meta.source, uuid.uuid4().hex)
            tally.add(*self._insert_raw(pending, current))
            self._record_batch(current, tally)
            total.merge(tally)
        return total.result()

    def _insert_raw(
        self, tables: list[pa.Table], meta: BatchMeta
    ) -> tuple[int, int, datetime | None, datetime | None, pa.Table | None]:
        """Insert the new events of raw batches in one statement, emptying ``tables``.

        Returns what :meth:`_insert` returns. DuckDB reads the tables through a stream that
        lets go of each record batch once read: it would otherwise keep every table of the
        transaction alive until the commit.
        """
        if not tables:
            return 0, 0, None, None, None
        keys = pa.concat_tables([t.select(_RAW_KEY) for t in tables])
        received = keys.num_rows
        if not received:
            tables.clear()
            return 0, 0, None, None, None
        keep = _first_rows(keys)
        if keep is not None:
            whole = pa.concat_tables(tables).take(keep)
            tables[:] = [whole]
        times = pa.chunked_array([t.column("stage_time") for t in tables]).combine_chunks()
        first, last = pc.min(times).as_py(), pc.max(times).as_py()
        # The digest columns of the rows kept (the raw JSON is not copied: same buffers).
        kept = pa.concat_tables([t.select([*DIGEST_COLUMNS, "stage_time"]) for t in tables])
        schema = tables[0].schema

        def batches() -> Iterator[pa.RecordBatch]:
            while tables:
                yield from tables.pop(0).to_batches()

        reader = pa.RecordBatchReader.from_batches(schema, batches())
        self._con.register("_raw_batch", reader)
        try:
            span = {"cluster": meta.cluster, "lo": first, "hi": last}
            # A batch later than everything stored (the usual import of a log in time order)
            # has nothing to compare: duplicates share the stage time.
            if _first(self._con, duckdb_raw.STORED_IN_RANGE, span) is None:
                params = {"cluster": meta.cluster, "source": meta.source, "batch_id": meta.batch_id}
                row = _first(self._con, _INSERT_RAW_ALL, params)
            else:
                params = {**span, "source": meta.source, "batch_id": meta.batch_id}
                row = _first(self._con, _INSERT_RAW, params)
        finally:
            # After a failed statement the transaction is aborted and unregister fails too;
            # the statement's own error is the one to report.
            with suppress(duckdb.Error):
                self._con.unregister("_raw_batch")
            tables.clear()
        stored = int(row[0]) if row else 0
        if not self.chain:
            return received, stored, first, last, None
        # When some rows were duplicates, the stored rows are read back at the end instead.
        return received, stored, first, last, kept if stored == kept.num_rows else None

    def write_group(self, items: Sequence[tuple[pa.Table, BatchMeta]]) -> list[WriteResult]:
        """Store several batches in one transaction, each with its own batch record and result.

        The webhook receiver groups the small batches (400 events) queued behind a commit:
        one transaction's fixed cost then serves them all.
        """
        results: list[WriteResult] = []
        with self._lock, _translated("cannot write the batches"), self._transaction():
            for table, meta in items:
                tally = _Tally()
                tally.add(*self._insert(table, meta))
                self._record_batch(meta, tally)
                results.append(tally.result())
        return results

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        _run(self._con, "BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self._heads.rollback()
            _run(self._con, "ROLLBACK")
            raise
        try:
            _run(self._con, "COMMIT")
        except BaseException:
            self._heads.rollback()
            raise
        self._heads.commit()

    def _insert(
        self, table: pa.Table, meta: BatchMeta
    ) -> tuple[int, int, datetime | None, datetime | None, pa.Table | None]:
        """Insert the new events of one table.

        Returns:
            received, stored, first and last stage time, and the digest columns of the rows
            actually stored (for the chain; ``None`` without a chain).
        """
        if table.schema != EVENT_SCHEMA:
            raise StoreError("batch does not have the event schema")
        if table.num_rows == 0:
            return 0, 0, None, None, None
        received = table.num_rows
        table = _first_of_each_key(table)
        # The batch id comes from the batch record, whatever the caller put in the column.
        batch_ids = pa.repeat(pa.scalar(meta.batch_id, pa.string()), table.num_rows)
        table = table.set_column(_BATCH_ID_INDEX, "batch_id", batch_ids)
        times = table.column("stage_time")
        first, last = pc.min(times).as_py(), pc.max(times).as_py()
        self._con.register("_batch", table)
        try:
            params = {"cluster": meta.cluster, "lo": first, "hi": last}
            row = _first(self._con, _INSERT_NEW, params)
        finally:
            self._con.unregister("_batch")
        stored = int(row[0]) if row else 0
        if not self.chain:
            return received, stored, first, last, None
        # The digest columns of the rows kept: all of them, usually (no copy: DuckDB holds
        # these buffers until commit anyway). When some were duplicates, the batch's stored
        # rows are read back at the end (``_record_batch``) instead.
        kept = table.select([*DIGEST_COLUMNS, "stage_time"]) if stored == table.num_rows else None
        return received, stored, first, last, kept

    def _record_batch(self, meta: BatchMeta, tally: _Tally) -> None:
        if not tally.received:
            return
        _run(
            self._con,
            "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
            [meta.batch_id, meta.cluster, meta.source, *tally.row()],
        )
        if not self.chain or not tally.stored:
            return
        parts = tally.parts if not tally.partial else [self._read_back(meta, tally)]
        stage_times = pa.chunked_array(
            [c for p in parts for c in p.column("stage_time").chunks], pa.timestamp("us")
        )
        duckdb_chain.append(
            self._con,
            self._heads,
            cluster=meta.cluster,
            kind=KIND_BATCH,
            batch_id=meta.batch_id,
            events=tally.stored,
            first_time=pc.min(stage_times).as_py(),
            last_time=pc.max(stage_times).as_py(),
            events_sha256=events_digest(parts),
            detail={"source": meta.source},
            at=_utcnow(),
        )

    def _read_back(self, meta: BatchMeta, tally: _Tally) -> pa.Table:
        """The digest columns of what this batch stored, read inside its own transaction."""
        columns = ", ".join([*DIGEST_COLUMNS, "stage_time"])
        return self._con.sql(
            f"SELECT {columns} FROM {EVENTS_TABLE} WHERE cluster = $cluster AND batch_id = $batch "
            "AND stage_time BETWEEN $lo AND $hi",
            params={
                "cluster": meta.cluster,
                "batch": meta.batch_id,
                "lo": tally.first,
                "hi": tally.last,
            },
        ).to_arrow_table()

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pa.Table:
        """Run compiled SQL with bound parameters; see :meth:`Store.query`."""
        with self._lock, _translated("query failed"):
            return self._con.sql(sql, params=params or None).to_arrow_table()

    def read(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a read on a cursor of its own, without waiting for a commit in progress.

        DuckDB's MVCC lets reads on another cursor proceed while the writer commits, even
        through a checkpoint (bench/checkpoint_read_bench.py); the webhook's admission uses it
        to look up stored keys while the spool's committer writes.
        """
        with _translated("read failed"):
            cursor = self.cursor()
            try:
                return cursor.sql(sql, params=params or None).to_arrow_table()
            finally:
                cursor.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own on the store's database (close it when done).

        Reads on it proceed while the store's connection writes (DuckDB's MVCC).
        """
        cursor = self._con.cursor()
        _run(cursor, f"USE {CATALOG}")
        return cursor

    def count(self, cluster: str | None = None) -> int:
        """Number of stored events (all stages), optionally of one cluster."""
        sql = f"SELECT count(*) FROM {EVENTS_TABLE}"
        params: list[Any] = []
        if cluster is not None:
            sql += " WHERE cluster = ?"
            params.append(cluster)
        with self._lock, _translated("count failed"):
            row = _first(self._con, sql, params)
        return int(row[0]) if row else 0

    def stats(self) -> StoreStats:
        """Events by cluster, stage and verb, and the covered time range."""

        def grouped(column: str) -> dict[str, int]:
            rows = self._con.execute(
                f"SELECT {column}, count(*) FROM {EVENTS_TABLE} GROUP BY 1 ORDER BY 2 DESC, 1"
            ).fetchall()
            return {str(key): int(n) for key, n in rows}

        with self._lock, _translated("stats failed"):
            total, first, last = _first(
                self._con,
                "SELECT count(*), min(request_received), max(request_received) "
                f"FROM {EVENTS_TABLE}",
            ) or (0, None, None)
            return StoreStats(
                total=int(total),
                by_cluster=grouped("cluster"),
                by_stage=grouped("stage"),
                by_verb=grouped("verb"),
                first=first,
                last=last,
            )

    def export(self, cluster: str | None = None) -> Iterator[str]:
        """Yield stored events' JSON in time order (then auditID, then stage order)."""
        sql = f"SELECT raw FROM {EVENTS_TABLE}"
        params: list[Any] = []
        if cluster is not None:
            sql += " WHERE cluster = ?"
            params.append(cluster)
        sql += (
            " ORDER BY request_received, audit_id, "
            "list_position(['RequestReceived','ResponseStarted','ResponseComplete','Panic'], stage)"
        )
        # A cursor of its own, so a long export does not hold the lock between reads.
        with _translated("export failed"):
            cursor = self.cursor()
            try:
                reader = cursor.sql(sql, params=params or None).to_arrow_reader(_EXPORT_ROWS)
                for batch in reader:
                    yield from batch.column(0).to_pylist()
            finally:
                cursor.close()

    def delete_older_than(self, cutoff: datetime, cluster: str | None = None) -> int:
        """Remove events received before ``cutoff`` (naive UTC or aware)."""
        if cutoff.tzinfo is not None:
            cutoff = cutoff.astimezone(UTC).replace(tzinfo=None)
        sql = f"DELETE FROM {EVENTS_TABLE} WHERE request_received < ?"
        params: list[Any] = [cutoff]
        if cluster is not None:
            sql += " AND cluster = ?"
            params.append(cluster)
        with self._lock, _translated("delete failed"):
            row = _first(self._con, sql, params)
        return int(row[0]) if row else 0

    # -- the chain: reads for verify and retention, removals that extend it ---------------

    def chain_clusters(self) -> list[str]:
        """Clusters with a chain or with stored events."""
        with self._lock, _translated("cannot read the chain"):
            return duckdb_chain.clusters(self._con)

    def chain_records(self, cluster: str) -> list[ChainRecord]:
        """A cluster's chain records in sequence order, as stored (not checked)."""
        with self._lock, _translated("cannot read the chain"):
            return duckdb_chain.records(self._con, cluster)

    def batch_summary(
        self, cluster: str
    ) -> dict[str | None, tuple[int, datetime | None, datetime | None]]:
        """Stored events of a cluster by batch id: count and stage-time range."""
        with self._lock, _translated("cannot summarise the batches"):
            return duckdb_chain.batch_summary(self._con, cluster)

    def batch_events(
        self,
        cluster: str,
        batches: Sequence[tuple[str, int, datetime | None, datetime | None]],
        every_column: bool = False,
    ) -> Iterator[tuple[str, pa.Table]]:
        """The digest columns of each batch's stored events, a few batches per query.

        Args:
            cluster: the cluster.
            batches: (batch id, expected events, first and last recorded stage time); the
                counts size the queries, the times let DuckDB skip row groups.
            every_column: every column of the events, not only the digest's.
        """
        for ids, lo, hi in duckdb_chain.read_groups(batches):
            with self._lock, _translated("cannot read the batches"):
                tables = list(
                    duckdb_chain.batch_events(self._con, cluster, ids, lo, hi, every_column)
                )
            yield from tables

    def remove_batches(
        self,
        cluster: str,
        batch_ids: Sequence[str],
        *,
        kind: str,
        detail: Mapping[str, Any],
        unchained_before: datetime | None = None,
        at: datetime | None = None,
    ) -> ChainRecord:
        """Delete whole batches of a cluster and append the removal to its chain, atomically.

        Args:
            cluster: the cluster.
            batch_ids: the batches to delete (their chain records stay: the chain is append-only).
            kind: ``retention`` or ``eviction``.
            detail: why and by whom (stored in the record, with ``removed_batches``).
            unchained_before: also delete events received before this time that no chain
                record covers (stores written before the chain existed).
            at: the record's time (default now, UTC).

        Returns:
            The appended record (``events``: how many were deleted, with their time range).
        """
        ids = list(batch_ids)
        where = "cluster = $cluster AND (list_contains($ids, batch_id)"
        params: dict[str, Any] = {"cluster": cluster, "ids": ids}
        if unchained_before is not None:
            where += (
                " OR (request_received < $cutoff AND batch_id NOT IN "
                "(SELECT batch_id FROM chain WHERE cluster = $cluster AND batch_id IS NOT NULL))"
            )
            params["cutoff"] = unchained_before
        where += ")"
        with self._lock, _translated("cannot remove batches"), self._transaction():
            count, first, last, unchained = _first(
                self._con,
                f"SELECT count(*), min(stage_time), max(stage_time), "
                f"count(*) FILTER (WHERE NOT list_contains($ids, batch_id)) "
                f"FROM {EVENTS_TABLE} WHERE {where}",
                params,
            )
            _run(self._con, f"DELETE FROM {EVENTS_TABLE} WHERE {where}", params)
            full = {**detail, "removed_batches": ids, "unchained_events": int(unchained or 0)}
            return duckdb_chain.append(
                self._con,
                self._heads,
                cluster=cluster,
                kind=kind,
                batch_id=None,
                events=int(count),
                first_time=first,
                last_time=last,
                events_sha256=None,
                detail=full,
                at=at or _utcnow(),
            )

    def count_unchained_before(self, cluster: str, cutoff: datetime) -> int:
        """Events of a cluster received before ``cutoff`` that no chain record covers."""
        with self._lock, _translated("cannot count unchained events"):
            row = _first(
                self._con,
                f"SELECT count(*) FROM {EVENTS_TABLE} WHERE cluster = $cluster "
                "AND request_received < $cutoff AND batch_id NOT IN "
                "(SELECT batch_id FROM chain WHERE cluster = $cluster AND batch_id IS NOT NULL)",
                {"cluster": cluster, "cutoff": cutoff},
            )
        return int(row[0]) if row else 0

    def used_bytes(self) -> int:
        """Bytes of the database file's blocks in use (what a size cap is compared with)."""
        with self._lock, _translated("cannot read the database size"):
            row = _first(
                self._con,
                "SELECT used_blocks * block_size FROM pragma_database_size() "
                "WHERE database_name = current_database()",
            )
        return int(row[0]) if row and row[0] is not None else 0

    def checkpoint(self) -> None:
        """Write everything to the file and free the blocks of deleted row groups."""
        with self._lock, _translated("checkpoint failed"):
            _run(self._con, "FORCE CHECKPOINT")

    def columns(self) -> tuple[str, ...]:
        """The event columns, in storage order."""
        return COLUMN_NAMES

    def close(self) -> None:
        """Checkpoint and close the database."""
        with self._lock:
            # Read-only connections cannot checkpoint; closing is what matters.
            with suppress(duckdb.Error):
                _run(self._con, "CHECKPOINT")
            self._con.close()

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_KEY = ["cluster", "audit_id", "stage", "request_received"]
_RAW_KEY = ["audit_id", "stage", "request_received"]
_INSERT_RAW = duckdb_raw.insert_sql("_raw_batch")
_INSERT_RAW_ALL = duckdb_raw.insert_sql("_raw_batch", dedupe=False)
_BATCH_ID_INDEX = EVENT_SCHEMA.get_field_index("batch_id")


class _Tally:
    """Counts and time range of what one batch received and stored."""

    def __init__(self) -> None:
        self.received = 0
        self.stored = 0
        self.first: datetime | None = None
        self.last: datetime | None = None
        #: Digest columns of the stored rows, for the chain record.
        self.parts: list[pa.Table] = []
        self.partial = False

    def add(
        self,
        received: int,
        stored: int,
        first: datetime | None,
        last: datetime | None,
        part: pa.Table | None = None,
    ) -> None:
        self.received += received
        self.stored += stored
        if part is not None and part.num_rows:
            self.parts.append(part)
        elif part is None and received:
            self.partial = True  # some rows were duplicates: the chain reads the batch back
        if first is not None:
            self.first = first if self.first is None else min(self.first, first)
        if last is not None:
            self.last = last if self.last is None else max(self.last, last)

    def merge(self, other: _Tally) -> None:
        """Add another batch's counts (for the result of a write of several batches)."""
        self.received += other.received
        self.stored += other.stored

    def row(self) -> tuple[int, int, int, datetime | None, datetime | None]:
        """received, stored, duplicates, first and last time: the ``batches`` columns."""
        return self.received, self.stored, self.received - self.stored, self.first, self.last

    def result(self) -> WriteResult:
        return WriteResult(stored=self.stored, duplicates=self.received - self.stored)


def _first_rows(keys: pa.Table) -> pa.Array | None:
    """Positions of the first row of each key, in order; ``None`` when every key is unique."""
    indexed = keys.append_column("_i", pa.array(range(keys.num_rows), pa.int64()))
    firsts = indexed.group_by(keys.column_names, use_threads=False).aggregate([("_i", "min")])
    if firsts.num_rows == keys.num_rows:
        return None
    keep = firsts.column("_i_min")
    return pc.take(keep, pc.sort_indices(keep))


def _first_of_each_key(table: pa.Table, key: list[str] = _KEY) -> pa.Table:
    """Drop rows of the batch that repeat an earlier row's key (a file ingested twice at once)."""
    keep = _first_rows(table.select(key))
    return table if keep is None else table.take(keep)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[Any]:
    """Execute and fetch everything: DuckDB refuses new work while a result is unread."""
    return con.execute(sql, params or []).fetchall()


def _first(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> Any:
    rows = _run(con, sql, params)
    return rows[0] if rows else None


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn DuckDB's exceptions into :class:`StoreError` at the boundary."""
    try:
        yield
    except duckdb.Error as exc:
        raise StoreError(f"{what}: {exc}") from exc
