"""The ``Store`` protocol: what every storage engine offers the rest of kubetrail.

Callers (the pipeline, the CLI, the query runner, policy simulation) depend only on this
protocol, so that a ClickHouse engine can stand in for the embedded one without touching them.
SQL handed to :meth:`Store.query` must come from the query compiler (``kubetrail.query``) or
from the engine itself: user values travel as parameters, never pasted into the text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

#: The name of the table (or view) that holds the normalised events in every engine.
EVENTS_TABLE = "events"


@dataclass(frozen=True)
class BatchMeta:
    """Describes one batch handed to :meth:`Store.write_batch`.

    Attributes:
        cluster: the cluster every event of the batch belongs to.
        source: where the batch came from (file path, ``<stdin>``, ``webhook``).
        batch_id: a unique id; the engine records it with the batch.
    """

    cluster: str
    source: str
    batch_id: str


@dataclass(frozen=True)
class WriteResult:
    """What a write did: events newly stored and events skipped as duplicates."""

    stored: int
    duplicates: int


@dataclass(frozen=True)
class StoreStats:
    """Counts for ``kubetrail stats``."""

    total: int
    by_cluster: dict[str, int] = field(default_factory=dict)
    by_stage: dict[str, int] = field(default_factory=dict)
    by_verb: dict[str, int] = field(default_factory=dict)
    first: datetime | None = None
    last: datetime | None = None


@runtime_checkable
class Store(Protocol):
    """A place that keeps normalised audit events.

    Attributes:
        dialect: the SQL dialect the query compiler must emit for this engine
            (``"duckdb"`` or ``"clickhouse"``).
    """

    dialect: str

    def write_batch(self, table: pa.Table, meta: BatchMeta) -> WriteResult:
        """Store one batch atomically: every new event of it, or none on failure.

        ``table`` has :data:`kubetrail.model.schema.EVENT_SCHEMA`. Events already stored
        (same cluster, auditID, stage and request time) are skipped and counted as duplicates.
        """
        ...

    def write_batches(self, tables: Iterable[pa.Table], meta: BatchMeta) -> WriteResult:
        """Store several tables as one batch, atomically, consuming them one at a time.

        Lets a file import make large batches (fast to commit) without holding one in memory.
        """
        ...

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pa.Table:
        """Run compiled SQL with bound parameters and return the result as Arrow."""
        ...

    def count(self, cluster: str | None = None) -> int:
        """Number of stored events (every stage), optionally for one cluster."""
        ...

    def stats(self) -> StoreStats:
        """Events by cluster, stage and verb, and the time range covered."""
        ...

    def export(self, cluster: str | None = None) -> Iterator[str]:
        """Yield the stored events' JSON (after redaction), one per item, in time order."""
        ...

    def delete_older_than(self, cutoff: datetime, cluster: str | None = None) -> int:
        """Remove events received before ``cutoff`` (UTC); return how many were removed."""
        ...

    def close(self) -> None:
        """Flush and release the engine."""
        ...
