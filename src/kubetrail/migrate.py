"""Move a store to another engine without loss: ``kubetrail migrate --from ... --to ...``.

Events are copied cluster by cluster in time order, in bounded Arrow batches, through the
target's ordinary ``write_batches`` (so a migration can be re-run: what is already there is
skipped as duplicates). Then both stores are checked, per cluster and day: the number of events
and the sum of a 64-bit hash of every event, computed by each engine in SQL. An event's hash is
SHA-256 over ``cluster, auditID, stage, request time (µs), raw JSON`` (separated by U+001F); the
other columns are derived from these. A day whose count or hash sum differs is listed with the
keys missing on either side.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa

from .errors import StoreError
from .model.schema import EVENT_SCHEMA
from .store.base import EVENTS_TABLE, BatchMeta, Store

#: Rows per copied batch: bounded memory whatever the store's size.
COPY_ROWS = 100_000
# The hash of an event, and the per-day aggregate, in each engine's SQL. The first 16 hex digits
# of SHA-256 are read as an unsigned 64-bit number; sums are exact (HUGEINT / UInt128).
_DAY_SUMS = {
    "duckdb": f"""
        SELECT cluster, CAST(request_received AS DATE) AS day, count(*) AS n,
               sum(('0x' || substr(sha256(cluster || chr(31) || audit_id || chr(31) || stage
                   || chr(31) || CAST(epoch_us(request_received) AS VARCHAR) || chr(31) || raw),
                   1, 16))::UBIGINT) AS h
        FROM {EVENTS_TABLE} GROUP BY 1, 2 ORDER BY 1, 2""",
    "clickhouse": f"""
        SELECT cluster, toDate32(request_received) AS day, count() AS n,
               sum(toUInt128(reinterpretAsUInt64(reverse(unhex(substring(hex(SHA256(
                   concat(cluster, char(31), audit_id, char(31), stage, char(31),
                          toString(toUnixTimestamp64Micro(request_received)), char(31), raw)
               )), 1, 16)))))) AS h
        FROM {EVENTS_TABLE} GROUP BY cluster, day ORDER BY cluster, day""",
}
_DAY_KEYS = {
    "duckdb": f"SELECT audit_id, stage, request_received FROM {EVENTS_TABLE} "
    "WHERE cluster = $cluster AND CAST(request_received AS DATE) = $day",
    "clickhouse": f"SELECT audit_id, stage, request_received FROM {EVENTS_TABLE} "
    "WHERE cluster = {cluster:String} AND toDate32(request_received) = {day:Date32}",
}


@dataclass
class MigrationReport:
    """What a migration did and found.

    Attributes:
        copied: events read from the source.
        stored: events newly stored in the target.
        duplicates: events the target already had.
        source_count: events in the source after the copy.
        target_count: events in the target after the copy.
        mismatched_days: ``(cluster, day)`` whose count or hash sum differ.
        missing: keys (cluster, auditID, stage, time) in the source but not in the target.
        extra: keys in the target but not in the source.
    """

    copied: int = 0
    stored: int = 0
    duplicates: int = 0
    source_count: int = 0
    target_count: int = 0
    mismatched_days: list[tuple[str, date]] = field(default_factory=list)
    missing: list[tuple[Any, ...]] = field(default_factory=list)
    extra: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every event of the source is in the target, unchanged."""
        return not self.mismatched_days and self.source_count == self.target_count

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``kubetrail migrate --format json``."""
        return {
            "ok": self.ok,
            "copied": self.copied,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "source_count": self.source_count,
            "target_count": self.target_count,
            "mismatched_days": [[c, d.isoformat()] for c, d in self.mismatched_days],
            "missing": [list(map(str, k)) for k in self.missing[:100]],
            "extra": [list(map(str, k)) for k in self.extra[:100]],
        }


ProgressCallback = Callable[[int], None]


def migrate(
    source: Store,
    target: Store,
    *,
    copy: bool = True,
    batch_rows: int = COPY_ROWS,
    progress: ProgressCallback | None = None,
) -> MigrationReport:
    """Copy every event of ``source`` into ``target``, then verify counts and hashes.

    Args:
        source: the store to read (any engine; read-only is enough).
        target: the store to fill.
        copy: false to verify only.
        batch_rows: events per written batch.
        progress: called with the number of events of each written batch.

    Raises:
        StoreError: an engine failed, or has no hash query.
    """
    report = MigrationReport()
    if copy:
        for cluster in _clusters(source):
            for table in _scan(source, cluster, batch_rows):
                meta = BatchMeta(cluster, "migrate", uuid.uuid4().hex)
                result = target.write_batch(table, meta)
                report.copied += table.num_rows
                report.stored += result.stored
                report.duplicates += result.duplicates
                if progress is not None:
                    progress(table.num_rows)
    verify(source, target, report)
    return report


def verify(source: Store, target: Store, report: MigrationReport) -> None:
    """Compare count and hash sum per (cluster, day); list the keys of days that differ."""
    report.source_count, report.target_count = source.count(), target.count()
    mine, theirs = _day_sums(source), _day_sums(target)
    for key in sorted(set(mine) | set(theirs)):
        if mine.get(key) != theirs.get(key):
            report.mismatched_days.append(key)
            ours, other = _day_keys(source, *key), _day_keys(target, *key)
            report.missing += sorted(ours - other)
            report.extra += sorted(other - ours)


def _clusters(store: Store) -> list[str]:
    table = store.query(f"SELECT DISTINCT cluster FROM {EVENTS_TABLE} ORDER BY cluster")
    return [str(c) for c in table.column(0).to_pylist()]


def _scan(store: Store, cluster: str, rows: int) -> Iterator[pa.Table]:
    """The cluster's events in time order, ``rows`` at a time, with the event schema."""
    columns = ", ".join(EVENT_SCHEMA.names)
    sql = f"SELECT {columns} FROM {EVENTS_TABLE} WHERE cluster = $cluster ORDER BY request_received"
    scan = getattr(store, "scan", None)
    if scan is not None:  # an engine that streams (none yet besides the fallback below)
        yield from scan(sql, {"cluster": cluster}, rows)
        return
    open_cursor = getattr(store, "cursor", None)
    if open_cursor is None:
        raise StoreError(f"cannot read the events of a {store.dialect} store in batches")
    # DuckDB: a cursor of its own streams Arrow batches (as DuckDBStore.export does).
    cursor = open_cursor()
    try:
        reader = cursor.sql(sql, params={"cluster": cluster}).to_arrow_reader(rows)
        for batch in reader:
            if batch.num_rows:
                yield pa.Table.from_batches([batch]).cast(EVENT_SCHEMA)
    finally:
        cursor.close()


def _day_sums(store: Store) -> dict[tuple[str, date], tuple[int, int]]:
    sql = _DAY_SUMS.get(store.dialect)
    if sql is None:
        raise StoreError(f"no event hash for engine {store.dialect}")
    rows = store.query(sql).to_pylist()
    return {(r["cluster"], r["day"]): (int(r["n"]), int(r["h"])) for r in rows}


def _day_keys(store: Store, cluster: str, day: date) -> set[tuple[Any, ...]]:
    table = store.query(_DAY_KEYS[store.dialect], {"cluster": cluster, "day": day})
    return {(cluster, *row.values()) for row in table.to_pylist()}
