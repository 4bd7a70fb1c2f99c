"""The scale-out store: a ClickHouse server or cluster, over HTTP with clickhouse-connect.

Many stateless collectors write to it and every query runs there; the tables are described in
:mod:`kubetrail.store.clickhouse_schema`.

Deduplication on (cluster, auditID, stage, request time) has three layers:

1. Before inserting, a collector asks which keys of its batch are already stored (the primary
   key narrows the lookup to the batch's cluster and time range, the bloom filter to its auditIDs)
   and inserts only the others. This covers re-ingested files and batches retried after an
   earlier write completed, and makes :class:`WriteResult` exact when collectors do not race.
2. The INSERT carries an ``insert_deduplication_token``: a hash of the keys it inserts. When the
   API server retries a webhook batch and two collectors write it at the same moment, both see
   nothing stored, insert the same keys under the same token, and ClickHouse keeps one block
   (``non_replicated_deduplication_window`` / ``replicated_deduplication_window``). The token
   deliberately ignores the ``batch_id``/``source`` columns, which differ between collectors.
3. ``events`` is a ``ReplacingMergeTree`` whose sorting key is the deduplication key, and reads
   run with ``FINAL`` (setting ``final = 1``), so copies that slip past both are never counted,
   and disappear from disk when parts merge. They slip past when an INSERT is not atomic: a
   batch spread over several shards (Distributed) or several days (partitions) becomes visible
   part by part, so a racing collector's check sees some of its keys and inserts the rest under
   another token. FINAL's price is measured in docs/scale-out.md: it is paid on parts not merged
   yet. ``exact_reads=False`` skips it, for readers that accept such copies until the merge.

ClickHouse has no multi-statement transactions: a batch whose events span several days is
several parts. A failed write may leave part of a batch, which the retry completes without
duplicates (layer 1); ``batches`` is written after the events.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.exceptions import ClickHouseError
from clickhouse_connect.driver.external import ExternalData

from ..errors import ConfigError, StoreError
from ..model.schema import COLUMN_NAMES, EVENT_SCHEMA
from . import clickhouse_chain
from .base import EVENTS_TABLE, BatchMeta, StoreStats, WriteResult
from .clickhouse_arrow import bind_positional, empty_arrow, to_arrow
from .clickhouse_schema import BATCH_COLUMNS, SCHEMA_VERSION, retention_ddl, schema_ddl
from .duckdb import _first_of_each_key

#: Settings of reads with ``exact_reads`` (the default): FINAL everywhere. Copies of an event
#: always share a daily partition (the request time is in the key): FINAL need not merge across
#: partitions.
EXACT_READ_SETTINGS = {"final": 1, "do_not_merge_across_partitions_select_final": 1}
#: Settings of reads without ``exact_reads``.
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
        exact_reads: read with ``FINAL`` (default), so that copies written by racing
            collectors are never counted, even before parts merge (see above).
        settings: extra ClickHouse settings for the session.
    """

    dialect = "clickhouse"

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
        exact_reads: bool = True,
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
        # Through a Distributed table, an INSERT returns only once every shard has its rows:
        # the pipeline acknowledges a batch (and advances checkpoints) on that return.
        self._insert_settings = {"distributed_foreground_insert": 1} if cluster else {}
        self.read_settings = dict(EXACT_READ_SETTINGS if exact_reads else READ_SETTINGS)
        self._side = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kubetrail-ch-write")
        if create:
            self.create_schema(retention or {})
        self._check_version()
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
        """Store several tables as one batch: one duplicate check and one INSERT for all.

        ClickHouse wants few large inserts (each makes a part on disk, merged later), so the
        tables of a batch (the pipeline's chunks, at most ``BATCH_RECORDS`` events) are joined.
        """
        chunks: list[pa.Table] = []
        for table in tables:
            if table.schema != EVENT_SCHEMA:
                raise StoreError("batch does not have the event schema")
            if table.num_rows:
                chunks.append(table)
        if not chunks:
            return WriteResult(0, 0)
        table = pa.concat_tables(chunks)
        received = table.num_rows
        table = _first_of_each_key(table)
        # The batch id comes from the batch record, as in the embedded store (the pipeline
        # leaves the column empty); verify names batches of unchained events by it.
        ids = pa.repeat(pa.scalar(meta.batch_id, pa.string()), table.num_rows)
        table = whole = table.set_column(table.schema.get_field_index("batch_id"), "batch_id", ids)
        times = table.column("request_received")
        lo, hi = pc.min(times).as_py(), pc.max(times).as_py()
        with _translated("cannot write the batch"):
            table = self._without_stored(table, meta.cluster, lo, hi)
        stored = table.num_rows
        row = [meta.batch_id, meta.cluster, meta.source, received, stored]
        row += [received - stored, lo, hi, datetime.now(UTC)]
        # The events, the batch row and the chain record are three INSERTs, each a round trip
        # and a part on the server. They are sent at once (the record does not depend on what
        # the server stores; see clickhouse_chain), so a batch waits for one, not three.
        side = [
            self._side.submit(clickhouse_chain.record_batch, self, meta, whole),
            self._side.submit(self._insert_batch_row, row),
        ]
        try:
            if stored:
                token = {"insert_deduplication_token": _token(meta.cluster, table)}
                with _translated("cannot write the batch"):
                    self._client.insert_arrow(
                        EVENTS_TABLE,
                        table,
                        database=self.database,
                        settings={**self._insert_settings, **token},
                    )
        except BaseException:
            wait(side)  # the events' error is the one to report
            raise
        for future in side:
            future.result()
        return WriteResult(stored=stored, duplicates=received - stored)

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
        ids = pa.table({"audit_id": pc.unique(table.column("audit_id"))})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, ids.schema) as writer:
            writer.write_table(ids)
        keys = ExternalData(
            file_name="batch_ids",
            data=sink.getvalue().to_pybytes(),
            fmt="ArrowStream",
            structure=["audit_id String"],
        )
        found = self._client.query_arrow(
            f"SELECT audit_id, stage, toUnixTimestamp64Micro(request_received) AS t "
            f"FROM {self.database}.{EVENTS_TABLE} "
            "WHERE cluster = {cluster:String} "
            "AND request_received BETWEEN toDateTime64({lo:String}, 6, 'UTC') "
            "AND toDateTime64({hi:String}, 6, 'UTC') "
            "AND audit_id IN (SELECT audit_id FROM batch_ids)",
            parameters={"cluster": cluster, "lo": _ts(lo), "hi": _ts(hi)},
            external_data=keys,
            settings={"final": 0},  # any stored copy counts; no need to merge
        )
        if found.num_rows == 0:
            return table
        stored = _key_strings(
            found.column("audit_id"), found.column("stage"), found.column("t").cast(pa.int64())
        )
        mine = _key_strings(
            table.column("audit_id"),
            table.column("stage"),
            table.column("request_received").cast(pa.int64()),
        )
        return table.filter(pc.invert(pc.is_in(mine, value_set=pc.unique(stored))))

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


def _cluster_filter(cluster: str | None) -> tuple[str, dict[str, Any] | None]:
    if cluster is None:
        return "", None
    return " WHERE cluster = {cluster:String}", {"cluster": cluster}


def _token(cluster: str, table: pa.Table) -> str:
    """The same for every collector inserting the same events, whatever their batch ids."""
    keys = _key_strings(
        table.column("audit_id"),
        table.column("stage"),
        table.column("request_received").cast(pa.int64()),
    )
    ordered = pc.take(keys, pc.sort_indices(keys)).to_pylist()
    return hashlib.sha256("\x1e".join([cluster, *ordered]).encode()).hexdigest()


def _key_strings(audit_id: Any, stage: Any, micros: Any) -> pa.Array:
    return pc.binary_join_element_wise(
        audit_id.cast(pa.string()), stage.cast(pa.string()), micros.cast(pa.string()), "\x1f"
    )


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
