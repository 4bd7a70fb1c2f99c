"""Storage of normalised audit events behind one :class:`Store` protocol.

Engines: ``duckdb`` (embedded, the default). Callers get a store from :func:`open_store` and
use only the protocol, so engines can be swapped by configuration.
"""

from __future__ import annotations

from pathlib import Path

from .base import EVENTS_TABLE, BatchMeta, Store, StoreStats, WriteResult
from .duckdb import DuckDBStore

__all__ = [
    "EVENTS_TABLE",
    "BatchMeta",
    "DuckDBStore",
    "Store",
    "StoreStats",
    "WriteResult",
    "open_store",
]


def open_store(path: str | Path, *, read_only: bool = False) -> DuckDBStore:
    """Open (or create) the embedded store at ``path``.

    Args:
        path: the database file; ``":memory:"`` for a throw-away store.
        read_only: open for queries only (several readers may share the file).
    """
    return DuckDBStore(path, read_only=read_only)
