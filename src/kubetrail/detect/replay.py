"""Rules over stored history: the alerts they raise (``rules test``) and how often they would
have fired per day (``rules backtest``).

``replay`` streams the stored events through the same batch engine as live ingest (so patch
bodies are handled the same way) and runs threshold rules over epoch-aligned windows and
first-seen rules over the whole range. ``backtest`` counts with grouped SQL instead, which is
much faster over months of events; it sees JSON-patch bodies as stored (see
docs/detections.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pyarrow as pa
from sqlglot import exp

from ..model.schema import EVENT_SCHEMA
from ..query.dialects import DIALECTS
from ..store.base import EVENTS_TABLE, Store
from .alertstore import NewMatch
from .detector import DEFAULT_COOLDOWN, fold
from .engine import BatchEngine, Match
from .rules import Rule
from .scheduled import first_seen_matches, grouped, threshold_matches

#: Events per batch handed to the engine while replaying.
REPLAY_BATCH = 49_152


def stored_events(store: Store, time_from: datetime, time_to: datetime) -> Iterator[pa.Table]:
    """The stored events of ``[time_from, time_to)`` (every stage), in batches, by time.

    One query per day that has events (years of sparse history cost one query per day seen).
    """
    dialect = DIALECTS[store.dialect]()
    time = exp.column("request_received")
    in_range = [
        exp.GTE(this=time.copy(), expression=dialect.timestamp(time_from)),
        exp.LT(this=time.copy(), expression=dialect.timestamp(time_to)),
    ]
    day = dialect.time_bucket(time.copy(), 86400)
    days_sql = exp.select(exp.alias_(day, "day")).from_(EVENTS_TABLE).where(*in_range)
    days_sql = days_sql.group_by(day.copy()).order_by(day.copy())
    days = [r["day"] for r in store.query(days_sql.sql(dialect=store.dialect)).to_pylist()]
    for start in days:
        end = min(time_to, start + timedelta(days=1))
        select = (
            exp.select(*(exp.column(f.name) for f in EVENT_SCHEMA))
            .from_(EVENTS_TABLE)
            .where(exp.GTE(this=time.copy(), expression=dialect.timestamp(max(start, time_from))))
            .where(exp.LT(this=time.copy(), expression=dialect.timestamp(end)))
            .order_by(time.copy())
        )
        table = store.query(select.sql(dialect=store.dialect))
        table = table.cast(EVENT_SCHEMA) if table.schema != EVENT_SCHEMA else table
        for offset in range(0, table.num_rows, REPLAY_BATCH):
            yield table.slice(offset, REPLAY_BATCH)


def replay_matches(
    store: Store, rules: Sequence[Rule], time_from: datetime, time_to: datetime
) -> list[Match]:
    """Every match of ``rules`` over the stored events of ``[time_from, time_to)``."""
    enabled = [r for r in rules if r.enabled]
    matches: list[Match] = []
    engine = BatchEngine(enabled)
    try:
        if engine.rules:
            for table in stored_events(store, time_from, time_to):
                matches += engine.scan(table)
    finally:
        engine.close()
    for rule in enabled:
        if rule.threshold is not None:
            matches += threshold_matches(store, rule, time_from, time_to, tumbling=True)
        elif rule.first_seen is not None:
            matches += first_seen_matches(store, rule, time_from, time_to)
    return matches


def replay(
    store: Store,
    rules: Sequence[Rule],
    time_from: datetime,
    time_to: datetime,
    cooldown: timedelta = DEFAULT_COOLDOWN,
) -> list[NewMatch]:
    """The alerts ``rules`` raise over ``[time_from, time_to)``: matches folded by key."""
    return fold(replay_matches(store, rules, time_from, time_to), cooldown)


@dataclass
class DayCount:
    """How often a rule fired on one day: alerts (distinct keys) and matching requests."""

    alerts: int = 0
    events: int = 0


@dataclass
class RuleBacktest:
    """A rule's backtest: per-day counts (days without a match are absent)."""

    rule: Rule
    days: dict[date, DayCount] = field(default_factory=dict)
    skipped: str | None = None

    @property
    def alerts(self) -> int:
        return sum(d.alerts for d in self.days.values())

    @property
    def events(self) -> int:
        return sum(d.events for d in self.days.values())


def backtest(
    store: Store, rules: Sequence[Rule], time_from: datetime, time_to: datetime
) -> list[RuleBacktest]:
    """How often each rule would have fired per day over ``[time_from, time_to)``.

    Stateless rules: alerts are distinct (cluster, key) per day. Threshold rules: windows that
    reached the count. First-seen rules: new combinations by the day first seen. Silence rules
    are about the present and are skipped.
    """
    results = []
    for rule in rules:
        result = RuleBacktest(rule)
        if rule.silence is not None:
            result.skipped = "silence rules run live only"
        elif rule.audit_errors is not None:
            result.skipped = "audit_errors rules read scraped counters, live only"
        elif rule.threshold is not None:
            for g in grouped(
                store,
                rule,
                rule.threshold.by,
                time_from,
                time_to,
                bucket=rule.threshold.window,
                min_count=rule.threshold.count,
            ):
                day = result.days.setdefault(g.first.date(), DayCount())
                day.alerts += 1
                day.events += g.count
        elif rule.first_seen is not None:
            for m in first_seen_matches(store, rule, time_from, time_to):
                day = result.days.setdefault(m.time.date(), DayCount())
                day.alerts += 1
                day.events += m.count
        else:
            for g in grouped(store, rule, rule.key, time_from, time_to, bucket=timedelta(days=1)):
                assert g.bucket is not None
                day = result.days.setdefault(g.bucket.date(), DayCount())
                day.alerts += 1
                day.events += g.count
        results.append(result)
    return results
