"""Threshold, first-seen and audit-silence rules: queries against the store.

They run against the store, not the batch, so that they hold across every collector that
writes to it (and across batches). The SQL is built with sqlglot from the rule's compiled
filter, for the store's dialect; every value is a literal built by sqlglot.

* threshold: ``count`` matching requests with the same ``by`` values within ``window``.
* first_seen: a combination of ``fields`` whose earliest request in ``[from - learn, to)`` is at
  or after ``from``; a cluster needs ``learn`` of stored history before the rule fires there.
* silence: no event from a cluster for the given time (live only: it is about "now").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlglot import exp

from ..query.compiler import compile_query
from ..query.dialects import DIALECTS
from ..query.fields import resolve
from ..query.generator import Generator
from ..store.base import EVENTS_TABLE, Store
from .engine import Match, render, rule_filter
from .rules import Rule

#: The most auditIDs a grouped match carries.
MAX_IDS = 100


@dataclass(frozen=True)
class Group:
    """One group of a grouped rule query."""

    cluster: str
    values: dict[str, Any]
    count: int
    first: datetime
    last: datetime
    audit_ids: tuple[str, ...]
    bucket: datetime | None = None


def grouped(
    store: Store,
    rule: Rule,
    fields: Iterable[str],
    time_from: datetime,
    time_to: datetime,
    *,
    bucket: timedelta | None = None,
    min_count: int = 1,
    new_since: datetime | None = None,
) -> list[Group]:
    """Run the rule's filter over ``[time_from, time_to)``, grouped by cluster and ``fields``.

    Args:
        store: the store.
        rule: the rule (its ``when`` and ``except``).
        fields: the fields to group by.
        time_from, time_to: the request-time range (naive UTC).
        bucket: also group by time buckets of this width (epoch-aligned).
        min_count: keep groups of at least this many requests.
        new_since: keep groups whose earliest request is at or after this time.
    """
    dialect = DIALECTS[store.dialect]()
    gen = Generator(dialect)
    time = gen.field_sql(resolve("time"))
    names = list(fields)
    columns: list[exp.Expression] = [exp.column("cluster")]
    columns += [gen.field_sql(resolve(f)) for f in names]
    if bucket is not None:
        columns.append(dialect.time_bucket(time.copy(), int(bucket.total_seconds())))
    count = exp.Count(this=exp.Star())
    ids = exp.ArrayAgg(this=exp.column("audit_id"))
    select = (
        exp.select(
            *(exp.alias_(c, f"g{i}") for i, c in enumerate(columns)),
            exp.alias_(count, "n"),
            exp.alias_(exp.Min(this=time.copy()), "first"),
            exp.alias_(exp.Max(this=time.copy()), "last"),
            exp.alias_(ids, "ids"),
        )
        .from_(EVENTS_TABLE)
        .where(rule_filter(rule, store.dialect))
        .where(exp.GTE(this=time.copy(), expression=dialect.timestamp(time_from)))
        .where(exp.LT(this=time.copy(), expression=dialect.timestamp(time_to)))
        .group_by(*(c.copy() for c in columns))
    )
    having: list[exp.Expression] = []
    if min_count > 1:
        having.append(exp.GTE(this=count.copy(), expression=exp.Literal.number(min_count)))
    if new_since is not None:
        having.append(
            exp.GTE(this=exp.Min(this=time.copy()), expression=dialect.timestamp(new_since))
        )
    if having:
        select = select.having(exp.and_(*having))
    rows = store.query(select.sql(dialect=store.dialect)).to_pylist()
    groups = []
    for row in rows:
        values = {f: row[f"g{i + 1}"] for i, f in enumerate(names)}
        groups.append(
            Group(
                cluster=row["g0"] or "",
                values=values,
                count=int(row["n"]),
                first=row["first"],
                last=row["last"],
                audit_ids=tuple(sorted(a for a in row["ids"] if a))[:MAX_IDS],
                bucket=row[f"g{len(columns) - 1}"] if bucket is not None else None,
            )
        )
    return groups


def history_start(store: Store) -> dict[str, datetime]:
    """The earliest stored request time of each cluster."""
    compiled = compile_query("| stats min(time) as first by cluster", store.dialect)
    rows = store.query(compiled.sql).to_pylist()
    return {r["cluster"]: r["first"] for r in rows if r["first"] is not None}


def last_event(store: Store) -> dict[str, datetime]:
    """The latest stored request time of each cluster (every stage)."""
    compiled = compile_query("stage=* | stats max(time) as last by cluster", store.dialect)
    rows = store.query(compiled.sql).to_pylist()
    return {r["cluster"]: r["last"] for r in rows if r["last"] is not None}


def threshold_matches(
    store: Store, rule: Rule, time_from: datetime, time_to: datetime, *, tumbling: bool = False
) -> list[Match]:
    """Groups of a threshold rule that reach ``count`` in ``[time_from, time_to)``.

    Live, the range is the last ``window`` (one group per key); over history (``tumbling``), the
    range is cut into windows aligned to the epoch.
    """
    t = rule.threshold
    assert t is not None
    groups = grouped(
        store,
        rule,
        t.by,
        time_from,
        time_to,
        bucket=t.window if tumbling else None,
        min_count=t.count,
    )
    return [_match(rule, g, t.by, _duration(t.window)) for g in groups]


def first_seen_matches(
    store: Store, rule: Rule, time_from: datetime, time_to: datetime
) -> list[Match]:
    """Combinations of a first-seen rule's fields first seen in ``[time_from, time_to)``."""
    f = rule.first_seen
    assert f is not None
    starts = history_start(store)
    learned = {c for c, first in starts.items() if first <= time_from - f.learn}
    groups = grouped(store, rule, f.fields, time_from - f.learn, time_to, new_since=time_from)
    return [_match(rule, g, f.fields, _duration(f.learn)) for g in groups if g.cluster in learned]


def silence_matches(store: Store, rule: Rule, now: datetime) -> list[Match]:
    """Clusters with no event for the rule's ``silence`` time before ``now``."""
    assert rule.silence is not None
    matches = []
    for cluster, last in sorted(last_event(store).items()):
        if last < now - rule.silence:
            row = {"cluster": cluster}
            extra = {"window": _duration(now - last), "last": last, "count": 0}
            matches.append(
                Match(rule, cluster, cluster, last, (), render(rule.output, row, extra), 0)
            )
    return matches


def _match(rule: Rule, g: Group, fields: Iterable[str], window: str) -> Match:
    row: dict[str, Any] = {"cluster": g.cluster}
    for name, value in g.values.items():
        column = resolve(name).column
        row[column or name] = value
    extra = {"count": g.count, "window": window, "first": g.first, "last": g.last}
    key = "|".join(_text(g.values[f]) for f in fields)
    if g.bucket is not None:
        key += f"@{g.bucket:%Y-%m-%dT%H:%M:%S}"
    return Match(
        rule, g.cluster, key, g.last, g.audit_ids, render(rule.output, row, extra), g.count
    )


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "-" if value is None else str(value)


def _duration(d: timedelta) -> str:
    seconds = int(d.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
