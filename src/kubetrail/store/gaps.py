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

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..errors import UnsupportedError
from .base import EVENTS_TABLE, Store

#: Defaults of :func:`find_gaps`.
MIN_GAP = timedelta(minutes=10)
FACTOR = 10.0

_STEPS = f"""
WITH active AS (
    SELECT cluster, time_bucket(INTERVAL 1 MINUTE, stage_time) AS minute
    FROM {EVENTS_TABLE}
    WHERE ($cluster::VARCHAR IS NULL OR cluster = $cluster)
      AND ($since::TIMESTAMP IS NULL OR stage_time >= $since)
    GROUP BY ALL
), steps AS (
    SELECT cluster, minute,
           lag(minute) OVER (PARTITION BY cluster ORDER BY minute) AS previous,
           max(minute) OVER (PARTITION BY cluster) AS latest
    FROM active
), rhythm AS (
    SELECT cluster, median(epoch(minute - previous)) AS usual
    FROM steps WHERE previous IS NOT NULL GROUP BY cluster
)
"""
# Silences between two active minutes, longer than usual.
_CLOSED_SQL = (
    _STEPS
    + """
SELECT s.cluster, s.previous + INTERVAL 1 MINUTE AS start, s.minute AS end,
       epoch(s.minute - s.previous) - 60 AS seconds, r.usual
FROM steps AS s JOIN rhythm AS r USING (cluster)
WHERE s.previous IS NOT NULL
  AND epoch(s.minute - s.previous) - 60 > greatest($min_seconds, $factor * r.usual)
ORDER BY s.cluster, s.previous
"""
)
# Each cluster's latest active minute and rhythm: the silence since then may still be open.
_LATEST_SQL = (
    _STEPS
    + """
SELECT s.cluster, s.minute, r.usual
FROM steps AS s JOIN rhythm AS r USING (cluster)
WHERE s.minute = s.latest
ORDER BY s.cluster
"""
)


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
        store: the store (the embedded DuckDB engine).
        cluster: one cluster; default every cluster.
        since: only look at events from this time (naive UTC).
        min_gap: shortest silence reported. Default 10 minutes.
        factor: a silence must also exceed this many times the cluster's usual spacing.
        now: when given, a silence from a cluster's latest event until ``now`` is reported too
            (the stream stopped and has not come back), with ``end = now``.

    Returns:
        The gaps, by cluster then time.

    Raises:
        UnsupportedError: the engine is not DuckDB.
    """
    if store.dialect != "duckdb":
        raise UnsupportedError(f"gap detection runs on the duckdb engine, not {store.dialect}")
    params = {
        "cluster": cluster,
        "since": since,
        "min_seconds": min_gap.total_seconds(),
        "factor": factor,
    }
    rows = store.query(_CLOSED_SQL, params).to_pylist()
    gaps = [
        Gap(r["cluster"], r["start"], r["end"], float(r["seconds"]), float(r["usual"]))
        for r in rows
    ]
    if now is not None:
        gaps += _open_gaps(store, cluster, since, min_gap, factor, now)
    return gaps


def _open_gaps(
    store: Store,
    cluster: str | None,
    since: datetime | None,
    min_gap: timedelta,
    factor: float,
    now: datetime,
) -> list[Gap]:
    params = {"cluster": cluster, "since": since}
    out = []
    for row in store.query(_LATEST_SQL, params).to_pylist():
        start = row["minute"] + timedelta(minutes=1)
        seconds = (now - start).total_seconds()
        if seconds > max(min_gap.total_seconds(), factor * float(row["usual"])):
            out.append(Gap(row["cluster"], start, now, seconds, float(row["usual"])))
    return out
