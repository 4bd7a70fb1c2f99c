"""Alerts kept with their cluster's events (issue 9: production never shares storage).

A server whose clusters write to store files of their own
(:class:`~kubetrail.store.layout.RoutedStore`, ``server.clusters[].store``) stores each alert,
and its delivery states, in the file its cluster's events go to; clusters without a file of
their own use ``server.db``. Reads follow the selection: one cluster or an environment reads
the files of those clusters, "all clusters" reads every file, and ``server.db`` is always read
too, so alerts stored there before a cluster had its own file stay visible. An alert is found
by id in whichever file holds it (ids are random, so one file holds it).

Every function takes the server's store as it is: a plain store (one file or ClickHouse) is
used directly, exactly as :mod:`kubetrail.detect.alertstore` does. The files are those the
server already opened; nothing here opens a store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..store.base import Store
from ..store.routing import cluster_store, every_store, read_stores
from . import alertstore
from .alertstore import NewMatch, StoredAlert


def record_many(store: Store, items: Sequence[NewMatch]) -> list[StoredAlert]:
    """:func:`~kubetrail.detect.alertstore.record_many`, each item in its cluster's store;
    the alerts raised now, in the order of their first match."""
    groups: dict[int, tuple[Store, list[NewMatch]]] = {}
    for item in items:
        target = cluster_store(store, item.cluster)
        groups.setdefault(id(target), (target, []))[1].append(item)
    raised: list[StoredAlert] = []
    for target, group in groups.values():
        raised += alertstore.record_many(target, group)
    return sorted(raised, key=lambda a: (a.first_seen, a.id))


def list_alerts(
    store: Store,
    *,
    since: datetime | None = None,
    status: str | None = None,
    cluster: str | Sequence[str] | None = None,
    environment: str | None = None,
    limit: int = 500,
) -> list[StoredAlert]:
    """Stored alerts of the selected clusters from every store that may hold them, most
    recently seen first (arguments as :func:`~kubetrail.detect.alertstore.list_alerts`).

    Each store returns at most ``limit`` alerts in the same order, so merging them and keeping
    the first ``limit`` is exact.
    """
    found: list[StoredAlert] = []
    for s in read_stores(store, cluster):
        found += alertstore.list_alerts(
            s, since=since, status=status, cluster=cluster, environment=environment, limit=limit
        )
    found.sort(key=lambda a: a.id)
    found.sort(key=lambda a: a.last_seen, reverse=True)  # stable: ties stay ordered by id
    return found[: max(0, int(limit))]


def find_store(store: Store, alert_id: str) -> Store | None:
    """The store that holds the alert with this id, or ``None``."""
    for s in every_store(store):
        if alertstore.get_alert(s, alert_id) is not None:
            return s
    return None


def get_alert(store: Store, alert_id: str) -> StoredAlert | None:
    """The alert with this id from whichever store holds it, or ``None``."""
    for s in every_store(store):
        found = alertstore.get_alert(s, alert_id)
        if found is not None:
            return found
    return None


def set_status(store: Store, alert_id: str, status: str, by: str) -> StoredAlert:
    """Acknowledge, resolve or reopen an alert in the store that holds it.

    Raises:
        KeyError: no store holds an alert with this id.
        UsageError: an unknown status.
    """
    holder = find_store(store, alert_id)
    if holder is None:
        # Let alertstore validate the status first (UsageError), then report the id.
        alertstore.set_status(every_store(store)[0], alert_id, status, by)
        raise KeyError(alert_id)
    return alertstore.set_status(holder, alert_id, status, by)


def set_delivery(
    store: Store, alert: StoredAlert, sink: str, state: str, attempts: int, error: str | None
) -> None:
    """Record an alert's state at one sink next to the alert (its cluster's store)."""
    alertstore.set_delivery(
        cluster_store(store, alert.cluster), alert.id, sink, state, attempts, error
    )
