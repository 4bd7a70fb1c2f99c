"""Storage of normalised audit events behind one :class:`Store` protocol.

Engines: ``duckdb`` (embedded, the default). Callers get a store from :func:`open_store` and
use only the protocol, so engines can be swapped by configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import EVENTS_TABLE, BatchMeta, Store, StoreStats, WriteResult
from .duckdb import DuckDBStore

__all__ = [
    "EVENTS_TABLE",
    "INGEST_SETTINGS",
    "BatchMeta",
    "DuckDBStore",
    "Store",
    "StoreStats",
    "WriteResult",
    "open_store",
]


#: Settings for a bulk import (measured in docs/benchmarks.md): a small cache leaves the memory
#: to decoding; checkpoints wait for the end of the import instead of running at every commit
#: (an import's commits took 40 s of 64 s per million events with DuckDB's 16 MB default).
#: One DuckDB thread: the import's INSERTs ran on one thread anyway under a small cache, and a
#: second worker made each 35-70 % slower (the decoding has the other core). 128 MB: under a
#: smaller limit DuckDB hands its freed memory back to the kernel (``malloc_trim``) hundreds of
#: times per million events and faults it in again; 96 MB made an import about 10 % slower
#: for 27 MB less at the peak, which the program's refusal of pandas (35 MB) now pays for.
INGEST_SETTINGS: dict[str, Any] = {
    "memory_limit": "128MB",
    "checkpoint_threshold": "1GB",
    "threads": 1,
}


def open_store(
    path: str | Path,
    *,
    read_only: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
    checkpoint_threshold: str | None = None,
) -> DuckDBStore:
    """Open (or create) the embedded store at ``path``.

    Args:
        path: the database file; ``":memory:"`` for a throw-away store.
        read_only: open for queries only (several readers may share the file).
        memory_limit: the engine's memory limit (``"128MB"``); default: the engine's own.
        threads: the engine's worker threads; default: one per core.
        checkpoint_threshold: write-ahead-log size that triggers a checkpoint (``"1GB"``).
    """
    return DuckDBStore(
        path,
        read_only=read_only,
        memory_limit=memory_limit,
        threads=threads,
        checkpoint_threshold=checkpoint_threshold,
    )
