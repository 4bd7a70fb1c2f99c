"""A batch cut into the pieces ClickHouse stores atomically, each with its own insert token.

An INSERT into a MergeTree table makes one part per partition (here: per day), and through a
``Distributed`` table one INSERT per shard; each part becomes visible on its own. So a batch
spanning two days or two shards is visible piece by piece, and a collector racing on the same
retried batch may see some pieces stored and insert the rest. Exactness without ``FINAL`` needs
both collectors to produce *the same pieces with the same tokens*, so ClickHouse drops the second
copy of each (``non_replicated_deduplication_window`` / ``replicated_deduplication_window``):

* a piece is the batch's new rows of one (partition, shard): one part, whole or not at all;
* its token is the SHA-256 of the table and the piece's sorted keys (cluster, auditID, stage,
  request time), nothing a collector adds (``batch_id``, ``source``);
* it is sent as one Arrow record batch with squashing off (``min_insert_block_size_rows`` and
  ``_bytes`` = 0), and synchronously (``async_insert = 0``): one block, so one block id. Measured
  on ClickHouse 26.9: the same rows sent as 43 record batches and as one get different block ids
  even with the same token, and squashing thresholds change how many parts one INSERT makes;
* on a cluster, the shard is computed as ``Distributed`` does it (the sharding key modulo the
  total shard weight, slots given to shards in order, ``weight`` slots each), by the server
  itself (the sharding key evaluated over the batch's auditIDs), and the piece is sent through
  the ``Distributed`` table to that shard only (``insert_shard_id``, with
  ``distributed_foreground_insert = 1``).

``tests/clickhouse/test_exact_without_final.py`` checks each point against a real server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.external import ExternalData

from .clickhouse_schema import SHARDING_KEY

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

#: Settings of every piece's INSERT (plus its token and, on a cluster, its shard).
PIECE_SETTINGS: Mapping[str, int] = {
    "insert_deduplicate": 1,
    "async_insert": 0,
    "min_insert_block_size_rows": 0,
    "min_insert_block_size_bytes": 0,
}


@dataclass(frozen=True)
class Piece:
    """New rows of one batch in one partition (and shard): one INSERT, one block, one part.

    Attributes:
        table: the rows, one Arrow record batch.
        token: the ``insert_deduplication_token``.
        shard: the ``shard_num`` of ``system.clusters`` it goes to; ``None`` on one server.
    """

    table: pa.Table
    token: str
    shard: int | None = None

    def settings(self) -> dict[str, Any]:
        """The INSERT's settings."""
        found: dict[str, Any] = {**PIECE_SETTINGS, "insert_deduplication_token": self.token}
        if self.shard is not None:
            found.update(insert_shard_id=self.shard, distributed_foreground_insert=1)
        return found


@dataclass(frozen=True)
class Shards:
    """How a ``Distributed`` table maps its sharding key to shards.

    Attributes:
        slots: the shard number of each remainder of the sharding key modulo the total weight.
    """

    slots: tuple[int, ...]

    @classmethod
    def of(cls, weights: Sequence[tuple[int, int]]) -> Shards:
        """From ``(shard_num, weight)`` pairs in shard order, as ``system.clusters`` lists them.

        Raises:
            ValueError: no shard has a positive weight.
        """
        slots = tuple(num for num, weight in sorted(weights) for _ in range(max(weight, 0)))
        if not slots:
            raise ValueError("the cluster has no shard with a positive weight")
        return cls(slots)


def read_shards(client: Client, cluster: str) -> Shards:
    """The shards and weights of ``cluster`` from the server's ``system.clusters``.

    Raises:
        ValueError: the server does not know the cluster, or no shard has a weight.
    """
    rows = client.query(
        "SELECT shard_num, any(shard_weight) FROM system.clusters "
        "WHERE cluster = {cluster:String} GROUP BY shard_num ORDER BY shard_num",
        parameters={"cluster": cluster},
    ).result_rows
    if not rows:
        raise ValueError(f"the server has no cluster '{cluster}' in system.clusters")
    return Shards.of([(int(num), int(weight)) for num, weight in rows])


def ids_table(audit_ids: pa.ChunkedArray | pa.Array) -> ExternalData:
    """The distinct auditIDs of a batch as an external table ``batch_ids (audit_id String)``."""
    ids = pa.table({"audit_id": pc.unique(audit_ids).cast(pa.string())})
    return _external("batch_ids", ids, ["audit_id String"])


def keys_table(audit_ids: pa.ChunkedArray, stages: pa.ChunkedArray) -> ExternalData:
    """A batch's (auditID, stage) pairs as an external table ``batch_keys (audit_id String,
    stage String)``; a pair given twice is sent twice (harmless to ``IN``)."""
    pairs = pa.table({"audit_id": audit_ids.cast(pa.string()), "stage": stages.cast(pa.string())})
    return _external("batch_keys", pairs, ["audit_id String", "stage String"])


def _external(name: str, table: pa.Table, structure: list[str]) -> ExternalData:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return ExternalData(
        file_name=name, data=sink.getvalue().to_pybytes(), fmt="ArrowStream", structure=structure
    )


def shard_lookup(client: Client, shards: Shards, cluster: str, audit_ids: Any) -> pa.Table:
    """The shard of each auditID of one kubetrail cluster, as ``Distributed`` picks it.

    The server evaluates the sharding key over the auditIDs (the same function on the same
    types as the ``Distributed`` table: ``cluster`` is ``LowCardinality(String)``).

    Returns:
        a table ``(audit_id string, shard int64)``, one row per distinct auditID.
    """
    found = client.query_arrow(
        f"SELECT audit_id, ({SHARDING_KEY}) % {{weight:UInt64}} AS slot FROM ("
        "SELECT toLowCardinality({cluster:String}) AS cluster, audit_id FROM batch_ids)",
        parameters={"cluster": cluster, "weight": len(shards.slots)},
        external_data=ids_table(audit_ids),
        settings={"final": 0},
    )
    slots = found.column("slot").to_numpy().astype(np.int64)
    shard = np.asarray(shards.slots, dtype=np.int64)[slots]
    return pa.table({"audit_id": found.column("audit_id").cast(pa.string()), "shard": shard})


def shards_of_rows(table: pa.Table, lookup: pa.Table) -> np.ndarray:
    """The shard of each row of ``table``, from :func:`shard_lookup` over its auditIDs."""
    rows = pc.index_in(
        table.column("audit_id").cast(pa.string()), value_set=lookup.column("audit_id")
    ).to_numpy(zero_copy_only=False)
    return lookup.column("shard").to_numpy()[rows]


def cut(
    table: pa.Table,
    *,
    target: str,
    cluster: str,
    shard_of_rows: np.ndarray | None = None,
) -> list[Piece]:
    """Cut the new rows of a batch into pieces by day (the partition key) and shard.

    Args:
        table: rows of one kubetrail cluster, one per key.
        target: ``database.table`` the pieces go to: part of every token, so that two tables
            never share one.
        cluster: the kubetrail cluster of the rows.
        shard_of_rows: the shard number of each row (from :func:`shards_of_rows`), or ``None``
            on one server.
    """
    if table.num_rows == 0:
        return []
    # toDate32(request_received) of a DateTime64(6, 'UTC'): the UTC day of the naive-UTC time.
    days = pc.cast(table.column("request_received"), pa.date32()).cast(pa.int32())
    group = days.to_numpy().astype(np.int64)
    if shard_of_rows is not None:
        group = group * 1_000_003 + shard_of_rows  # shard numbers are small: no collisions
    order = np.argsort(group, kind="stable")
    ordered = group[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(ordered)]
    # One copy in piece order, then zero-copy slices of its single chunk: one record batch each.
    table = (table.take(pa.array(order)) if len(starts) > 1 else table).combine_chunks()
    pieces = []
    for start, end in zip(starts, ends, strict=True):
        rows = table.slice(int(start), int(end - start))
        shard = None if shard_of_rows is None else int(shard_of_rows[order[start]])
        pieces.append(Piece(rows, token(target, cluster, rows), shard))
    return pieces


def token(target: str, cluster: str, rows: pa.Table) -> str:
    """SHA-256 of the target table, the cluster and the rows' sorted keys.

    The same for every collector inserting the same events, whatever their batch ids.
    """
    keys = key_strings(
        rows.column("audit_id"),
        rows.column("stage"),
        rows.column("request_received").cast(pa.int64()),
    )
    ordered = pc.take(keys, pc.sort_indices(keys)).to_pylist()
    return hashlib.sha256("\x1e".join([target, cluster, *ordered]).encode()).hexdigest()


def key_strings(audit_id: Any, stage: Any, micros: Any) -> pa.Array:
    """One string per key: auditID, stage and request time in microseconds."""
    return pc.binary_join_element_wise(
        audit_id.cast(pa.string()), stage.cast(pa.string()), micros.cast(pa.string()), "\x1f"
    )
