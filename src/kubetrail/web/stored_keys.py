"""Reads of the embedded store that admission needs: newest stage times and stored keys.

Fixed SQL with bound parameters (values are never pasted into the text); used for the
embedded store only, where this process is the single writer. The key lookup reads on a cursor
of its own (``DuckDBStore.read``), so it does not wait for the committer's transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from .dedupe import StoreLookup

_EPOCH = datetime(1970, 1, 1)
_NEWEST = "SELECT cluster, max(stage_time) FROM events GROUP BY cluster"
_KEYS = (
    "SELECT audit_id, stage, request_received FROM events "
    "WHERE cluster = $cluster AND stage_time BETWEEN $lo AND $hi "
    "AND list_contains($ids, audit_id)"
)


def targets(store: Any) -> list[Any]:
    """Every distinct store file behind ``store`` (a routed store has several)."""
    return list(store.stores()) if hasattr(store, "stores") else [store]


def target(store: Any, cluster: str) -> Any:
    """The store file holding a cluster's events."""
    return store.target(cluster) if hasattr(store, "target") else store


def newest_stage_times(store: Any) -> dict[str, int]:
    """Per cluster, the newest stored stage time in µs since the epoch (the index's floors)."""
    floors: dict[str, int] = {}
    for each in targets(store):
        table = each.query(_NEWEST)
        times = table.column(1).cast(pa.int64()).to_pylist()
        for cluster, when in zip(table.column(0).to_pylist(), times, strict=True):
            if when is not None:
                floors[cluster] = max(when, floors.get(cluster, when))
    return floors


def key_lookup(store: Any) -> StoreLookup:
    """A :data:`~.dedupe.StoreLookup` reading the cluster's store file."""

    def lookup(cluster: str, ids: list[str], lo: int, hi: int) -> set[tuple[str, str, int]]:
        params = {"cluster": cluster, "ids": ids, "lo": _time(lo), "hi": _time(hi)}
        table = target(store, cluster).read(_KEYS, params)
        received = table.column(2).cast(pa.int64()).to_pylist()
        return set(
            zip(table.column(0).to_pylist(), table.column(1).to_pylist(), received, strict=True)
        )

    return lookup


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)
