"""Gaps in a cluster's stream: quiet periods much longer than usual.

An API server that stops sending (webhook misconfigured, audit backend blocked, collector
down) shows up as a stretch without events. :func:`find_gaps` looks at each cluster's active
minutes (minutes with at least one stored event): the time between two consecutive active
minutes is the cluster's rhythm; a gap is a quiet stretch longer than both ``min_gap`` and
``factor`` times the cluster's median. A busy cluster (events every minute) then reports any
silence over ``min_gap`` (default 10 minutes); a quiet one is judged against its own pace.

Removals by retention or eviction are not gaps: the chain records them (``kubetrail verify``).
Used by ``kubetrail stats`` and meant for an alert rule (a gap that ends at the latest event
is still open: ``Gap.open``).
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlglot import exp

from ..query.dialects import DIALECTS
from .base import EVENTS_TABLE, Store

#: Defaults of :func:`find_gaps`.
MIN_GAP = timedelta(minutes=10)
FACTOR = 10.0
_MINUTE = timedelta(minutes=1)

@dataclass(frozen=True)
class Gap:
    """A quiet stretch of one cluster.

    Attributes:
        cluster: the cluster.
        start: end of the last active minute before the silence (UTC).
        end: start of the first active minute after it.
        seconds: its length.
        usual_seconds: the cluster's median time between active minutes.
    """

    cluster: str
    start: datetime
    end: datetime
    seconds: float
    usual_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "cluster": self.cluster,
            "start": self.start.isoformat() + "Z",
            "end": self.end.isoformat() + "Z",
            "seconds": round(self.seconds, 1),
            "usual_seconds": round(self.usual_seconds, 1),
        }


def find_gaps(
    store: Store,
    cluster: str | None = None,
    since: datetime | None = None,
    *,
    min_gap: timedelta = MIN_GAP,
    factor: float = FACTOR,
    now: datetime | None = None,
) -> list[Gap]:
    """Quiet periods of each cluster longer than usual.

    Args:
        store: the store (either engine).
        cluster: one cluster; default every cluster.
        since: only look at events from this time (naive UTC).
        min_gap: shortest silence reported. Default 10 minutes.
        factor: a silence must also exceed this many times the cluster's usual spacing.
        now: when given, a silence from a cluster's latest event until ``now`` is reported too
            (the stream stopped and has not come back), with ``end = now``.

    Returns:
        The gaps, by cluster then time.
    """
    by_cluster = _active_minutes(store, cluster, since)
    gaps: list[Gap] = []
    floor = min_gap.total_seconds()
    for name, minutes in sorted(by_cluster.items()):
        steps = [(b - a).total_seconds() for a, b in itertools.pairwise(minutes)]
        if not steps:
            continue
        usual = statistics.median(steps)
        threshold = max(floor, factor * usual)
        for previous, minute in itertools.pairwise(minutes):
            seconds = (minute - previous).total_seconds() - 60
            if seconds > threshold:
                gaps.append(Gap(name, previous + _MINUTE, minute, seconds, usual))
        if now is not None:
            begin = minutes[-1] + _MINUTE
            seconds = (now - begin).total_seconds()
            if seconds > threshold:
                gaps.append(Gap(name, begin, now, seconds, usual))
    return gaps


def _active_minutes(
    store: Store, cluster: str | None, since: datetime | None
) -> dict[str, list[datetime]]:
    """Each cluster's minutes with at least one event, in order: one small group-by that the
    store's engine runs (the SQL is built with sqlglot for its dialect)."""
    dialect = DIALECTS[store.dialect]()
    minute = dialect.time_bucket(exp.column("stage_time"), 60)
    conditions: list[exp.Expression] = [exp.column("stage_time").is_(exp.null()).not_()]
    if cluster is not None:
        conditions.append(exp.column("cluster").eq(exp.Literal.string(cluster)))
    if since is not None:
        after = dialect.timestamp(since)
        conditions.append(exp.GTE(this=exp.column("stage_time"), expression=after))
    select = (
        exp.select(exp.column("cluster"), exp.alias_(minute, "minute"))
        .from_(EVENTS_TABLE)
        .where(exp.and_(*conditions))
        .group_by(exp.column("cluster"), minute.copy())
        .order_by(exp.column("cluster"), exp.column("minute"))
    )
    out: dict[str, list[datetime]] = {}
    for row in store.query(select.sql(dialect=store.dialect)).to_pylist():
        out.setdefault(row["cluster"], []).append(row["minute"])
    return out
