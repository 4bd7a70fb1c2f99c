"""The API server's own audit counters, as scraped: samples, and the events it failed to send.

``kubetrail serve`` scrapes each configured cluster's ``/metrics``
(:mod:`kubetrail.sources.apiserver_metrics`) and keeps two counters of kube-apiserver, in a
small table next to the alerts (``apiserver_audit_samples``; a cluster with a store file of its
own keeps its samples there, :mod:`kubetrail.store.routing`):

* ``apiserver_audit_event_total``: audit events generated and sent to the audit backend;
* ``apiserver_audit_error_total{plugin}``: audit events that failed to be audited properly, by
  the backend plugin affected (``webhook``, ``log``, ...).

An increase of the error counter between two scrapes is a gap in the trail that the events
themselves cannot show: :func:`audit_error_gaps` reports it ("the API server failed to send N
audit events between T1 and T2, plugin webhook"). A counter that goes down was reset (the API
server restarted): as Prometheus' ``increase()`` does, the new value is what failed since the
restart, never a negative number. The first sample of a series has nothing before it and is
not reported (when those failures happened is unknown).

Every value travels as a bound parameter.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .base import Store
from .routing import cluster_store, read_stores

TABLE = "apiserver_audit_samples"
ERROR_METRIC = "apiserver_audit_error_total"
EVENT_METRIC = "apiserver_audit_event_total"
METRICS = (ERROR_METRIC, EVENT_METRIC)

_DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    cluster VARCHAR NOT NULL,
    scraped_at TIMESTAMP NOT NULL,
    metric VARCHAR NOT NULL,
    plugin VARCHAR NOT NULL,
    value DOUBLE NOT NULL
)"""
_CH_DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    cluster LowCardinality(String),
    scraped_at DateTime64(6, 'UTC'),
    metric LowCardinality(String),
    plugin LowCardinality(String),
    value Float64
) ENGINE = MergeTree ORDER BY (cluster, metric, plugin, scraped_at)"""
_COLUMNS = ["cluster", "scraped_at", "metric", "plugin", "value"]
_READY: weakref.WeakSet[Any] = weakref.WeakSet()
_LOCK = threading.Lock()
#: How far before ``since`` samples are read, to find the one each series had before it.
_LOOKBACK = timedelta(days=1)


@dataclass(frozen=True)
class Sample:
    """One scraped value: the cluster, when (naive UTC), the metric, its plugin label."""

    cluster: str
    time: datetime
    metric: str
    plugin: str
    value: float


@dataclass(frozen=True)
class AuditErrorGap:
    """Audit events one API server failed to send between two scrapes.

    Attributes:
        cluster: the cluster.
        plugin: the audit backend plugin (``webhook``, ``log``, ...).
        start, end: the two scrapes (naive UTC).
        events: how many events failed (the increase of ``apiserver_audit_error_total``).
        generated: audit events generated meanwhile (increase of
            ``apiserver_audit_event_total``), when both scrapes have it.
        reset: the counter went down in between (the API server restarted).
    """

    cluster: str
    plugin: str
    start: datetime
    end: datetime
    events: int
    generated: int | None = None
    reset: bool = False

    @property
    def message(self) -> str:
        """The sentence the overview, the CLI and the alert show."""
        return (
            f"the API server failed to send {self.events} audit events between "
            f"{_iso(self.start)} and {_iso(self.end)}, plugin {self.plugin}"
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "cluster": self.cluster,
            "kind": "audit_errors",
            "plugin": self.plugin,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "events": self.events,
            "generated": self.generated,
            "reset": self.reset,
            "message": self.message,
        }


def ensure_table(store: Store) -> None:
    """Create the samples table if it is missing (once per store object)."""
    if store in _READY:
        return
    if getattr(store, "dialect", "duckdb") == "clickhouse":
        store.command(_CH_DDL)  # type: ignore[attr-defined]
    else:
        store.query(_DDL)
    _READY.add(store)


def record_samples(store: Store, samples: Sequence[Sample]) -> None:
    """Append scraped samples, each to its cluster's store file (issue 9: a production
    cluster's counters stay with its events)."""
    by_store: dict[int, tuple[Store, list[Sample]]] = {}
    for sample in samples:
        target = cluster_store(store, sample.cluster)
        by_store.setdefault(id(target), (target, []))[1].append(sample)
    for target, group in by_store.values():
        _append(target, group)


def _append(store: Store, samples: Sequence[Sample]) -> None:
    if not samples:
        return
    ensure_table(store)
    rows: list[list[Any]] = [
        [s.cluster, _naive(s.time), s.metric, s.plugin, float(s.value)] for s in samples
    ]
    if getattr(store, "dialect", "duckdb") == "clickhouse":
        aware = [[r[0], r[1].replace(tzinfo=UTC), *r[2:]] for r in rows]
        store.insert_rows(TABLE, _COLUMNS, aware)  # type: ignore[attr-defined]
        return
    with _LOCK:
        store.query(
            f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)}) "
            "SELECT unnest(?), unnest(?), unnest(?), unnest(?), unnest(?)",
            [list(column) for column in zip(*rows, strict=True)],
        )


def read_samples(
    store: Store,
    cluster: str | Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Sample]:
    """Stored samples, by cluster, metric, plugin and time (none when the table is missing:
    a store that no scraper wrote to, opened read-only).

    On a server whose clusters have store files of their own, ``server.db`` and the files of
    the clusters are read and merged (a series may start in ``server.db``, written before its
    cluster had a file, and go on in the file: merged, its rises are still exact).
    """
    stores = read_stores(store, cluster)
    if len(stores) == 1:
        return _read(stores[0], cluster, since, until)
    merged = [s for one in stores for s in _read(one, cluster, since, until)]
    return sorted(merged, key=lambda s: (s.cluster, s.metric, s.plugin, s.time))


def _read(
    store: Store,
    cluster: str | Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
) -> list[Sample]:
    clickhouse = getattr(store, "dialect", "duckdb") == "clickhouse"
    if store not in _READY and not _exists(store, clickhouse):
        return []
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    if isinstance(cluster, str):
        where.append("cluster = ?")
        params.append(cluster)
    elif cluster is not None:
        where.append("has(?, cluster)" if clickhouse else "list_contains(?, cluster)")
        params.append(list(cluster))
    if since is not None:
        where.append("scraped_at >= ?")
        params.append(_naive(since))
    if until is not None:
        where.append("scraped_at <= ?")
        params.append(_naive(until))
    rows = store.query(
        f"SELECT {', '.join(_COLUMNS)} FROM {TABLE} WHERE {' AND '.join(where)} "
        "ORDER BY cluster, metric, plugin, scraped_at",
        params,
    ).to_pylist()
    return [
        Sample(r["cluster"], _naive(r["scraped_at"]), r["metric"], r["plugin"], r["value"])
        for r in rows
    ]


def _exists(store: Store, clickhouse: bool) -> bool:
    sql = (
        "SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = ?"
        if clickhouse
        else "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ?"
    )
    return bool(store.query(sql, [TABLE]).column("n")[0].as_py())


def audit_error_gaps(
    store: Store,
    cluster: str | Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditErrorGap]:
    """Each rise of a cluster's ``apiserver_audit_error_total`` ending in ``(since, until]``.

    Args:
        store: the store that keeps the samples (the server's main store).
        cluster: one cluster or several; default every cluster.
        since: only rises whose second scrape is after this time (naive UTC).
        until: only rises whose second scrape is at or before this time.

    Returns:
        The gaps, by cluster, plugin and time.
    """
    start = since - _LOOKBACK if since is not None else None
    return increases(read_samples(store, cluster, start, until), since)


def increases(samples: Iterable[Sample], since: datetime | None = None) -> list[AuditErrorGap]:
    """The gaps in samples already read (ordered by cluster, metric, plugin, time)."""
    series: dict[tuple[str, str, str], list[Sample]] = {}
    for s in samples:
        series.setdefault((s.cluster, s.metric, s.plugin), []).append(s)
    generated = {
        cluster: points for (cluster, metric, _), points in series.items() if metric == EVENT_METRIC
    }
    gaps = []
    for (cluster, metric, plugin), points in sorted(series.items()):
        if metric != ERROR_METRIC:
            continue
        for before, after in itertools.pairwise(points):
            if since is not None and after.time <= since:
                continue
            reset = after.value < before.value
            rise = after.value if reset else after.value - before.value
            if rise <= 0:
                continue
            made = _rise(generated.get(cluster, []), before.time, after.time)
            gaps.append(
                AuditErrorGap(cluster, plugin, before.time, after.time, int(rise), made, reset)
            )
    return gaps


def _rise(points: list[Sample], start: datetime, end: datetime) -> int | None:
    at = {p.time: p.value for p in points}
    if start not in at or end not in at:
        return None
    a, b = at[start], at[end]
    return int(b if b < a else b - a)


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo is not None else t


def _iso(t: datetime) -> str:
    return t.replace(microsecond=0).isoformat() + "Z"
