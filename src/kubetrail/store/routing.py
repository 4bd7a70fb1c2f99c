"""Which store file holds a cluster's data on a server whose clusters may write to files of
their own (:class:`~kubetrail.store.layout.RoutedStore`); a plain store is its own answer.

Used for the data kept next to the events of a cluster: alerts
(:mod:`kubetrail.detect.routed_alerts`) and the scraped API server audit counters
(:mod:`kubetrail.store.audit_counters`). Nothing here opens a store: these are the stores the
server already opened (DuckDB allows one writer per file and process).
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import Store


def every_store(store: Store) -> list[Store]:
    """Every distinct store file of the server, ``server.db`` first (or ``[store]``)."""
    stores = getattr(store, "stores", None)
    return list(stores()) if callable(stores) else [store]


def cluster_store(store: Store, cluster: str) -> Store:
    """The store a cluster's events, alerts and counters go to."""
    target = getattr(store, "target", None)
    return target(cluster) if callable(target) else store


def read_stores(store: Store, cluster: str | Sequence[str] | None) -> list[Store]:
    """The stores to read for a cluster filter: ``server.db`` (which keeps what was written
    before a cluster had a file of its own) and the files of the clusters (every file for
    ``None``), each once."""
    if cluster is None or not callable(getattr(store, "target", None)):
        return every_store(store)
    names = [cluster] if isinstance(cluster, str) else list(cluster)
    out = [every_store(store)[0]]
    for name in names:
        s = cluster_store(store, name)
        if all(s is not seen for seen in out):
            out.append(s)
    return out
