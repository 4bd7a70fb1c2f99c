"""The hash chain's table in the DuckDB engine, and the reads ``verify`` and retention need.

Functions here take the open connection of :class:`~kubetrail.store.duckdb.DuckDBStore` and
run inside its lock (and, for writes, inside the batch's transaction), so a chain record is
committed with its events or not at all. The SQL is fixed text; values travel as parameters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from .base import EVENTS_TABLE
from .integrity import DIGEST_COLUMNS, GENESIS, ChainRecord

CHAIN_DDL = """
CREATE TABLE IF NOT EXISTS chain (
    cluster VARCHAR NOT NULL,
    seq BIGINT NOT NULL,
    kind VARCHAR NOT NULL,
    batch_id VARCHAR,
    events BIGINT NOT NULL,
    first_time TIMESTAMP,
    last_time TIMESTAMP,
    events_sha256 VARCHAR,
    detail VARCHAR NOT NULL,
    written_at TIMESTAMP NOT NULL,
    prev_hash VARCHAR NOT NULL,
    record_hash VARCHAR NOT NULL,
    PRIMARY KEY (cluster, seq)
)"""

_COLUMNS = (
    "cluster, seq, kind, batch_id, events, first_time, last_time, events_sha256, detail, "
    "written_at, "
    "prev_hash, record_hash"
)
# Events fetched per verify query: a few batches at a time, sorted in Arrow, not in SQL.
_READ_ROWS = 65_536


def head(con: duckdb.DuckDBPyConnection, cluster: str) -> tuple[int, str]:
    """The next sequence number of a cluster's chain and the hash to link to."""
    row = con.execute(
        "SELECT seq, record_hash FROM chain WHERE cluster = ? ORDER BY seq DESC LIMIT 1",
        [cluster],
    ).fetchone()
    if row is None:
        return 0, GENESIS
    return int(row[0]) + 1, str(row[1])


class Heads:
    """Each cluster's chain head, cached so a commit does not scan the chain.

    Safe because the store's read-write connection is the file's only writer (DuckDB locks the
    file). Heads set inside a transaction count only once it commits.
    """

    def __init__(self) -> None:
        self._committed: dict[str, tuple[int, str]] = {}
        self._pending: dict[str, tuple[int, str]] = {}

    def get(self, con: duckdb.DuckDBPyConnection, cluster: str) -> tuple[int, str]:
        """The next sequence number of ``cluster``'s chain and the hash to link to."""
        found = self._pending.get(cluster) or self._committed.get(cluster)
        return found if found is not None else head(con, cluster)

    def advance(self, record: ChainRecord) -> None:
        """Note a record appended in the open transaction."""
        self._pending[record.cluster] = (record.seq + 1, record.record_hash)

    def commit(self) -> None:
        """The open transaction committed."""
        self._committed.update(self._pending)
        self._pending.clear()

    def rollback(self) -> None:
        """The open transaction rolled back (or failed to commit)."""
        self._pending.clear()


def append(
    con: duckdb.DuckDBPyConnection,
    heads: Heads,
    *,
    cluster: str,
    kind: str,
    batch_id: str | None,
    events: int,
    first_time: datetime | None,
    last_time: datetime | None,
    events_sha256: str | None,
    detail: dict[str, Any],
    at: datetime,
) -> ChainRecord:
    """Seal and insert the next record of ``cluster``'s chain (in the caller's transaction)."""
    seq, prev = heads.get(con, cluster)
    record = ChainRecord(
        cluster=cluster,
        seq=seq,
        kind=kind,
        batch_id=batch_id,
        events=events,
        first_time=first_time,
        last_time=last_time,
        events_sha256=events_sha256,
        detail=detail,
        at=at,
        prev_hash=prev,
    ).sealed()
    con.execute(
        f"INSERT INTO chain ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            record.cluster,
            record.seq,
            record.kind,
            record.batch_id,
            record.events,
            record.first_time,
            record.last_time,
            record.events_sha256,
            json.dumps(detail, sort_keys=True, default=str),
            record.at,
            record.prev_hash,
            record.record_hash,
        ],
    ).fetchall()
    heads.advance(record)
    return record


def exists(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store has the chain table (a store opened read-only may predate it)."""
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'chain' "
        "AND table_catalog = current_database()"
    ).fetchone()
    return bool(row and row[0])


def records(con: duckdb.DuckDBPyConnection, cluster: str) -> list[ChainRecord]:
    """A cluster's chain records in sequence order, as stored (not checked)."""
    if not exists(con):
        return []
    rows = con.execute(
        f"SELECT {_COLUMNS} FROM chain WHERE cluster = ? ORDER BY seq", [cluster]
    ).fetchall()
    out = []
    for row in rows:
        try:
            detail = json.loads(row[8]) if row[8] else {}
        except ValueError:
            detail = {"unreadable": str(row[8])}
        out.append(
            ChainRecord(
                cluster=row[0],
                seq=int(row[1]),
                kind=row[2],
                batch_id=row[3],
                events=int(row[4]),
                first_time=row[5],
                last_time=row[6],
                events_sha256=row[7],
                detail=detail if isinstance(detail, dict) else {"unreadable": detail},
                at=row[9],
                prev_hash=row[10],
                record_hash=row[11],
            )
        )
    return out


def clusters(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Clusters that have a chain or stored events."""
    if not exists(con):
        rows = con.execute(f"SELECT DISTINCT cluster FROM {EVENTS_TABLE} ORDER BY 1").fetchall()
        return [str(r[0]) for r in rows]
    rows = con.execute(
        f"SELECT cluster FROM chain UNION SELECT cluster FROM {EVENTS_TABLE} ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


def batch_summary(
    con: duckdb.DuckDBPyConnection, cluster: str
) -> dict[str | None, tuple[int, datetime | None, datetime | None]]:
    """Stored events of a cluster by batch id: count and stage-time range."""
    rows = con.execute(
        f"SELECT batch_id, count(*), min(stage_time), max(stage_time) FROM {EVENTS_TABLE} "
        "WHERE cluster = ? GROUP BY batch_id",
        [cluster],
    ).fetchall()
    return {r[0]: (int(r[1]), r[2], r[3]) for r in rows}


def batch_events(
    con: duckdb.DuckDBPyConnection,
    cluster: str,
    batch_ids: Sequence[str],
    lo: datetime | None = None,
    hi: datetime | None = None,
    every_column: bool = False,
) -> Iterator[tuple[str, pa.Table]]:
    """The digest columns of the events of each batch (in no particular order).

    ``lo``/``hi`` (the batches' recorded stage-time range) let DuckDB skip row groups; an
    event moved outside it is missed here, and its batch then fails its digest.
    """
    columns = "*" if every_column else "batch_id, " + ", ".join(DIGEST_COLUMNS)
    sql = f"SELECT {columns} FROM {EVENTS_TABLE} WHERE cluster = ? AND list_contains(?, batch_id)"
    params: list[Any] = [cluster, list(batch_ids)]
    if lo is not None and hi is not None:
        sql += " AND stage_time BETWEEN ? AND ?"
        params += [lo, hi]
    table = con.sql(sql, params=params).to_arrow_table()
    ids = table.column("batch_id")
    for batch_id in batch_ids:
        yield batch_id, table.filter(pc.equal(ids, batch_id))


def read_groups(
    batches: Sequence[tuple[str, int, datetime | None, datetime | None]],
) -> Iterator[tuple[list[str], datetime | None, datetime | None]]:
    """Split batches into groups of about :data:`_READ_ROWS` events for one query each, with
    the stage-time range the group's records cover (``None`` when a record has none)."""
    group: list[tuple[str, int, datetime | None, datetime | None]] = []
    size = 0
    for batch in batches:
        if group and size + batch[1] > _READ_ROWS:
            yield _group(group)
            group, size = [], 0
        group.append(batch)
        size += batch[1]
    if group:
        yield _group(group)


def _group(
    batches: list[tuple[str, int, datetime | None, datetime | None]],
) -> tuple[list[str], datetime | None, datetime | None]:
    firsts = [b[2] for b in batches]
    lasts = [b[3] for b in batches]
    if any(t is None for t in firsts + lasts):
        return [b[0] for b in batches], None, None
    return [b[0] for b in batches], min(firsts), max(lasts)  # type: ignore[type-var]
