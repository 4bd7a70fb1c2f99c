"""DDL of the ClickHouse engine, for one node or for a cluster (ON CLUSTER, replicated).

Layout (the same column names and meanings as the embedded store, from
:data:`kubetrail.model.schema.EVENT_SCHEMA`):

* ``events``: ``ReplacingMergeTree`` ordered by ``(cluster, request_received, audit_id, stage)``
  and partitioned by day (``toDate32``). The sorting key is also the deduplication key of the
  embedded store (cluster, auditID, stage, request time), so a copy that reaches the table
  despite the collectors' insert tokens (:mod:`.clickhouse_pieces`) collapses into one row when
  parts merge, and reads with ``FINAL`` (``exact_reads``) hide it before that. Because the
  request time is in the key, all copies of an event fall into the same daily partition, which
  lets ``FINAL`` skip merging across partitions. Two skipping indexes: a bloom filter on
  ``audit_id`` (lookups by id) and a minmax index on ``request_received`` (newest-first
  listings, see ``TIME_INDEX``).
  Two projections: ``by_kind`` (see ``KIND_PROJECTION``), the columns that counts and charts
  group and filter by, ordered by ``is_final``, verb and hour; and ``by_time`` (see
  ``TIME_PROJECTION``), the columns of event listings ordered by time alone, which newest-first
  listings over all clusters read in order. One aggregating projection, ``by_minute`` (see
  ``MINUTE_PROJECTION``): counts per cluster, ``is_final``, verb and minute, which time charts
  and counts by verb read instead of the events (see :mod:`kubetrail.query.dialects.rollup`).
* ``batches``: one row per written batch (MergeTree).
* ``meta``: the schema version.

On a cluster, ``events_local``/``batches_local`` are ``ReplicatedReplacingMergeTree`` /
``ReplicatedMergeTree`` on every node and ``events``/``batches`` are ``Distributed`` tables over
them, sharded by ``cityHash64(cluster, audit_id)``: every copy and every stage of a request lands
on one shard, so per-shard ``FINAL`` deduplicates exactly.

Retention is per cluster: one ``TTL ... DELETE WHERE cluster = ...`` rule per configured cluster
and one for all others (https://clickhouse.com/docs/engines/table-engines/mergetree-family/mergetree#table_engine-mergetree-ttl).
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from ..errors import ConfigError
from ..model.schema import EVENT_SCHEMA
from .clickhouse_chain import chain_ddl

SCHEMA_VERSION = 2
#: The retention key for every cluster without a retention of its own.
OTHERS = "*"
#: Inserted blocks whose deduplication token each table remembers.
DEDUP_WINDOW = 10_000
#: The longest retention: ``Date`` arithmetic ends in 2149.
MAX_RETENTION_DAYS = 36_500

_LC = "LowCardinality(Nullable(String))"
_KEY_COLUMNS = {
    "cluster": "LowCardinality(String)",
    "audit_id": "String",
    "stage": "LowCardinality(String)",
}
#: Columns with few distinct values: dictionary-encoded (LowCardinality).
_LOW_CARDINALITY = frozenset(
    {
        "level", "verb", "username", "actor_kind", "sa_namespace", "sa_name", "user_agent",
        "api_group", "api_version", "resource", "subresource", "namespace", "response_reason",
        "decision", "event_version", "source",
    }
)  # fmt: skip
_TYPES = {
    pa.string(): "Nullable(String)",
    pa.list_(pa.string()): "Array(String)",
    pa.int32(): "Nullable(Int32)",
    pa.uint64(): "UInt64",
    pa.bool_(): "Nullable(Bool)",
    pa.float64(): "Nullable(Float64)",
    pa.timestamp("us"): "Nullable(DateTime64(6, 'UTC'))",
}
_SPECIAL = {
    "is_final": "Bool",
    "request_received": "DateTime64(6, 'UTC')",
    "user_groups": "Array(LowCardinality(String))",
    "raw": "String CODEC(ZSTD(3))",
}
ORDER_BY = "(cluster, request_received, audit_id, stage)"
#: The time range of every granule. The sorting key starts with ``cluster``, so ``ORDER BY
#: request_received DESC LIMIT n`` over all clusters cannot read in order; with this index
#: ClickHouse's top-K optimizations (``use_skip_indexes_for_top_k``,
#: ``use_top_k_dynamic_filtering``) read only the granules that can hold the newest rows.
TIME_INDEX = "INDEX request_received_minmax request_received TYPE minmax GRANULARITY 1"
SHARDING_KEY = "cityHash64(cluster, audit_id)"
#: The columns of ``by_kind``: the short ones that aggregations group and filter by (no raw JSON,
#: URI, names, IPs or ids, so listings and lookups keep reading the table and its indexes).
KIND_COLUMNS = (
    "cluster", "request_received", "is_final", "stage", "level", "verb", "username",
    "actor_kind", "sa_namespace", "sa_name", "user_agent", "api_group", "api_version",
    "resource", "subresource", "namespace", "response_code", "response_reason", "decision",
    "latency_ms",
)  # fmt: skip
#: A projection: a second copy of those columns (about a tenth of the table's size), ordered so
#: that the final stages (``is_final``: what counts read) of a cluster are contiguous, and within
#: them each verb, by hour. A query that needs only these columns reads it instead of the table
#: when that selects fewer granules (ClickHouse decides per query), so ``is_final`` and verb
#: filters skip most of it, and a verb over a time range is one contiguous run (before
#: 2026-11-24 the hour came first: a verb's rows were one short run per hour, and the granules
#: at the edges of each were most of what ``verb=delete`` over a day read). Listings keep the
#: table's time order, or ``by_time``'s. Projections are ignored under FINAL.
KIND_PROJECTION = (
    f"PROJECTION by_kind (SELECT {', '.join(KIND_COLUMNS)} "
    "ORDER BY cluster, is_final, verb, toStartOfHour(request_received))"
)
#: The columns of ``by_time``: a plain listing's (``query.compiler.LISTING_FIELDS``) and the
#: short ones listings filter on. Not the raw JSON, auditID, IPs or groups (a tenth of the
#: table's size instead of most of it): a listing that needs those reads the table, as before.
TIME_COLUMNS = (
    "cluster", "request_received", "is_final", "stage", "username", "verb", "resource",
    "subresource", "api_group", "namespace", "name", "response_code", "request_uri",
    "user_agent",
)  # fmt: skip
#: A projection ordered by time alone. The table's sorting key starts with ``cluster``, so
#: ``ORDER BY request_received DESC LIMIT n`` over all clusters cannot read the table in order;
#: it reads this projection backwards and stops after the first rows that pass the filter (the
#: plan says ``ReadFromMergeTree (by_time)``, ``Read type: InReverseOrder``). ClickHouse picks it
#: only when a query needs no other column, and for filters only when it selects fewer granules
#: than the table and ``by_kind``; it is ignored under FINAL, like every projection.
TIME_PROJECTION = f"PROJECTION by_time (SELECT {', '.join(TIME_COLUMNS)} ORDER BY request_received)"
#: The keys of ``by_minute`` besides the minute: what its counts can be filtered and grouped by.
MINUTE_KEYS = ("cluster", "is_final", "verb")
#: The minute of the request time, as a ``DateTime64`` of 1900 to 2299 like the column.
#: (``toStartOfMinute`` returns a ``DateTime``, which clamps times outside 1970 to 2106, and
#: ``date_trunc`` puts 1969-12-31 23:59:59.5 in 1970: ClickHouse 26.9.)
MINUTE_OF_TIME = "toStartOfInterval(request_received, INTERVAL 60000 MILLISECOND)"
_MINUTE_GROUP = ", ".join((*MINUTE_KEYS, MINUTE_OF_TIME))
#: An aggregating projection: the number of events per cluster, ``is_final``, verb and minute
#: (18,557 rows for the 1 M demo events, 27 KB). ClickHouse answers an aggregation from it when
#: the query counts rows and groups and filters only by expressions of these keys: counts by
#: verb, and time charts by verb once the compiler has written their buckets and time bounds on
#: the minute (:mod:`kubetrail.query.dialects.rollup`). Copies not yet merged away are counted
#: as in the table without FINAL; merges and retention treat it like the other projections.
MINUTE_PROJECTION = (
    f"PROJECTION by_minute (SELECT {_MINUTE_GROUP}, count() GROUP BY {_MINUTE_GROUP})"
)
#: Merges that drop copies rebuild the projections of the part they make. Lightweight DELETE
#: (retention) drops the projections of the parts it changes: those parts are read from the
#: table until a merge rewrites them. (``'rebuild'`` for DELETE is what ClickHouse documents,
#: but in 26.9 the projection kept the deleted rows, and counts read from it were wrong:
#: ``tests/clickhouse/test_kind_projection.py``.) The defaults refuse both on a table with
#: projections.
PROJECTION_SETTINGS = (
    "deduplicate_merge_projection_mode = 'rebuild', lightweight_mutation_projection_mode = 'drop'"
)


def column_type(name: str, arrow_type: pa.DataType) -> str:
    """The ClickHouse type of one event column."""
    if name in _KEY_COLUMNS:
        return _KEY_COLUMNS[name]
    if name in _SPECIAL:
        return _SPECIAL[name]
    if name in _LOW_CARDINALITY:
        return _LC
    return _TYPES[arrow_type]


def ttl_clause(retention: Mapping[str, int]) -> str:
    """One TTL rule per cluster with its own retention, and one for the others (key ``*``).

    An empty mapping keeps events forever, like the embedded store (``""``: no TTL clause).
    """
    for name, days in retention.items():
        if not 1 <= int(days) <= MAX_RETENTION_DAYS:
            raise ConfigError(
                f"retention of '{name}': {days} days is not in 1..{MAX_RETENTION_DAYS}"
            )
    # On the DateTime64 itself (1900 to 2299): ``Date`` wraps outside 1970 to 2149, ``DateTime``
    # after 2106, and a TTL on ``Date32`` kept a row from 1950 past its expiry (ClickHouse 26.9).
    expiry = "request_received + toIntervalDay({days})"
    named = {name: days for name, days in sorted(retention.items()) if name != OTHERS}
    rules = [
        f"{expiry.format(days=int(days))} DELETE WHERE cluster = {_quote(name)}"
        for name, days in named.items()
    ]
    if OTHERS in retention:
        default = expiry.format(days=int(retention[OTHERS])) + " DELETE"
        others = " AND ".join(f"cluster != {_quote(name)}" for name in named)
        rules.append(f"{default} WHERE {others}" if others else default)
    return "TTL " + ",\n    ".join(rules) if rules else ""


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _columns() -> str:
    lines = [f"    {f.name} {column_type(f.name, f.type)}" for f in EVENT_SCHEMA]
    lines.append("    INDEX audit_id_bloom audit_id TYPE bloom_filter(0.01) GRANULARITY 4")
    lines.append(f"    {TIME_INDEX}")
    lines.append(f"    {KIND_PROJECTION}")
    lines.append(f"    {TIME_PROJECTION}")
    lines.append(f"    {MINUTE_PROJECTION}")
    return ",\n".join(lines)


#: The ``batches`` table's columns and their types (also given with every insert).
BATCH_COLUMNS: tuple[tuple[str, str], ...] = (
    ("batch_id", "String"),
    ("cluster", "LowCardinality(String)"),
    ("source", "String"),
    ("received", "UInt32"),
    ("stored", "UInt32"),
    ("duplicates", "UInt32"),
    ("first_time", "Nullable(DateTime64(6, 'UTC'))"),
    ("last_time", "Nullable(DateTime64(6, 'UTC'))"),
    ("committed_at", "DateTime64(6, 'UTC')"),
)
_BATCH_COLUMNS = ",\n".join(f"    {name} {kind}" for name, kind in BATCH_COLUMNS)


def schema_ddl(
    database: str,
    *,
    cluster: str | None = None,
    retention: Mapping[str, int] | None = None,
) -> list[str]:
    """The statements that create kubetrail's tables, in order, and record the schema version.

    Every statement can run again without effect (``IF NOT EXISTS``, a replacing ``meta``).

    Args:
        database: the database to create and fill.
        cluster: a cluster of ``remote_servers``: ON CLUSTER DDL, replicated local tables and
            Distributed tables; ``None`` for one server.
        retention: days to keep per kubetrail cluster name (``{"prod": 400, "*": 30}``, where
            ``*`` is every other cluster); empty or ``None`` keeps events forever.
    """
    db = _ident(database)
    ttl = ttl_clause(retention or {})
    ttl = f"{ttl}\n" if ttl else ""
    on = f" ON CLUSTER {_ident(cluster)}" if cluster else ""
    events = "events_local" if cluster else "events"
    batches = "batches_local" if cluster else "batches"
    # Blocks remembered for insert_deduplication_token (see store/clickhouse.py, layer 2).
    dedup_window = (
        f"{'replicated' if cluster else 'non_replicated'}_deduplication_window = {DEDUP_WINDOW}"
    )
    if cluster:
        path = "'/clickhouse/tables/{shard}/{database}/%s', '{replica}'"
        replacing = f"ReplicatedReplacingMergeTree({path % events})"
        merge = f"ReplicatedMergeTree({path % batches})"
        # One replication group over every node: each node holds the whole (tiny) meta table.
        meta_engine = (
            "ReplicatedReplacingMergeTree('/clickhouse/tables/{database}/meta', '{replica}')"
        )
    else:
        replacing, merge, meta_engine = "ReplacingMergeTree", "MergeTree", "ReplacingMergeTree"
    statements = [
        f"CREATE DATABASE IF NOT EXISTS {db}{on}",
        f"CREATE TABLE IF NOT EXISTS {db}.{events}{on} (\n{_columns()}\n)\n"
        f"ENGINE = {replacing}\nPARTITION BY toDate32(request_received)\nORDER BY {ORDER_BY}\n"
        f"{ttl}SETTINGS {dedup_window}, {PROJECTION_SETTINGS}",
        f"CREATE TABLE IF NOT EXISTS {db}.{batches}{on} (\n{_BATCH_COLUMNS}\n)\n"
        f"ENGINE = {merge}\nPARTITION BY toYYYYMM(committed_at)\nORDER BY (cluster, committed_at)",
        f"CREATE TABLE IF NOT EXISTS {db}.meta{on} (key String, value String)\n"
        f"ENGINE = {meta_engine}\nORDER BY key",
    ]
    # Rows of ``meta`` replace each other by key: running this again changes nothing.
    version = f"INSERT INTO {db}.meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}')"
    if cluster:
        for table, local in (("events", events), ("batches", batches)):
            key = SHARDING_KEY if table == "events" else "cityHash64(batch_id)"
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {db}.{table}{on} AS {db}.{local}\n"
                f"ENGINE = Distributed({_ident(cluster)}, {db}, {local}, {key})"
            )
    statements.append(chain_ddl(database, cluster))  # the hash chain (clickhouse_chain.py)
    statements.append(version)
    return statements


def retention_ddl(
    database: str, retention: Mapping[str, int], *, cluster: str | None = None
) -> str:
    """``ALTER TABLE`` that applies a new retention to stored and future events."""
    table = "events_local" if cluster else "events"
    on = f" ON CLUSTER {_ident(cluster)}" if cluster else ""
    ttl = ttl_clause(retention)
    action = f"MODIFY {ttl}" if ttl else "REMOVE TTL"
    return f"ALTER TABLE {_ident(database)}.{table}{on} {action}"
