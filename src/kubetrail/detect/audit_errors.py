"""``audit_errors`` rules: the scraped ``apiserver_audit_error_total`` of a cluster went up.

The samples come from the server's scraper (:mod:`kubetrail.sources.apiserver_metrics`) and
live next to the alerts; each rise between two scrapes (:func:`audit_error_gaps`) is a match
keyed by the plugin, so a backend that keeps failing folds into one open alert whose count is
the events lost. Live only (``rules backtest`` skips these rules).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..store.audit_counters import AuditErrorGap, audit_error_gaps
from ..store.base import Store
from .engine import Match, render
from .rules import Rule

#: How far back each run looks again for scrapes stored after the previous run.
RECHECK = timedelta(minutes=10)


def audit_error_matches(
    store: Store, rule: Rule, since: datetime, now: datetime
) -> tuple[list[Match], datetime]:
    """Rises of the counter seen by a scrape after ``since`` (up to ``now``), at least the
    rule's ``audit_errors`` events each.

    Returns:
        The matches and the time of the newest scrape looked at (where the next run starts,
        so that a sample stored late is still seen once).
    """
    assert rule.audit_errors is not None
    gaps = audit_error_gaps(store, since=since, until=now)
    # Without a rise, move on but keep re-reading the last minutes: a scrape is stored a
    # little after its time, and the next run must still pair it with the one before.
    newest = max((g.end for g in gaps), default=max(since, now - RECHECK))
    return [_match(rule, g) for g in gaps if g.events >= rule.audit_errors], newest


def _match(rule: Rule, gap: AuditErrorGap) -> Match:
    row = {"cluster": gap.cluster}
    extra = {
        "count": gap.events,
        "plugin": gap.plugin,
        "first": gap.start,
        "last": gap.end,
        "window": f"{int((gap.end - gap.start).total_seconds())}s",
    }
    message = render(rule.output, row, extra)
    return Match(rule, gap.cluster, gap.plugin, gap.end, (), message, gap.events)
