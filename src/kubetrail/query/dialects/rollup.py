"""Counts over time from ClickHouse's ``by_minute`` projection: an exact rewrite of the SQL.

``by_minute`` (:data:`kubetrail.store.clickhouse_schema.MINUTE_PROJECTION`) holds the number of
events per cluster, ``is_final``, verb and minute (``toStartOfInterval(request_received,
INTERVAL 60000 MILLISECOND)``, written ``minute(t)`` below). ClickHouse
answers an aggregation from it only when every expression the query groups, filters and sorts
by can be computed from those keys. A time chart groups by ``toStartOfInterval(request_received,
…)`` and a time range compares ``request_received`` itself, neither of which can; two rewrites
that give the same rows make them so:

* a bucket whose width is whole minutes: ``toStartOfInterval(t, N ms)`` equals
  ``toStartOfInterval(minute(t), N ms)`` when 60,000 divides N (the buckets are epoch-aligned,
  so each one starts on a minute); a one-minute bucket is ``minute(t)`` already;
* a bound on a whole minute X: ``t >= X`` holds exactly when ``minute(t) >= X``, and ``t < X``
  exactly when ``minute(t) < X``.

``minute(t)`` rounds down and stays a ``DateTime64``, so both hold from 1900 to 2299.

They are applied only when the whole statement then fits the projection: it reads ``events``
itself, every aggregate is ``count()`` (``top``'s share of the total included), every other
column is a key, and no use of the time is left that the rewrites do not cover (a bound off the
minute, ``time > …``, ``time=…``, a listing). Any other statement is left exactly as compiled:
a bound on the minute would cost the ``by_kind`` projection its pruning by hour.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlglot import exp

from kubetrail.store.base import EVENTS_TABLE
from kubetrail.store.clickhouse_schema import MINUTE_KEYS

_TIME = "request_received"
_KEYS = frozenset((*MINUTE_KEYS, _TIME))
_BUCKET = "toStartOfInterval"
_ONE_MINUTE = exp.Interval(this=exp.Literal.number(60_000), unit=exp.Var(this="MILLISECOND"))
#: The comparisons that keep their meaning on the minute, for a bound on a whole minute.
_BOUNDS = (exp.GTE, exp.LT)


def minute_rollup(select: exp.Select) -> exp.Select:
    """``select`` rewritten to be answered from ``by_minute``, or ``select`` when it cannot be."""
    if not _counts_by_keys(select):
        return select
    rewritten = cast(exp.Select, select.copy().transform(_on_the_minute, copy=False))
    if any(_bare_time(column) for column in rewritten.find_all(exp.Column)):
        return select
    return rewritten


def _counts_by_keys(select: exp.Select) -> bool:
    # The FROM clause by type: sqlglot 28 renamed its key from "from" to "from_".
    source = next((arg for arg in select.args.values() if isinstance(arg, exp.From)), None)
    table = source.this if source is not None else None
    if not isinstance(table, exp.Table) or table.name != EVENTS_TABLE or select.args.get("joins"):
        return False
    aggregates = list(select.find_all(exp.AggFunc))
    if not aggregates or not all(_counts_rows(agg) for agg in aggregates):
        return False
    return all(column.name in _KEYS and not column.table for column in select.find_all(exp.Column))


def _counts_rows(agg: exp.AggFunc) -> bool:
    if isinstance(agg, exp.Count):
        return isinstance(agg.this, exp.Star)
    # ``top``/``rare``: COUNT(*) * 100.0 / SUM(COUNT(*)) OVER (), the share of the total.
    return (
        isinstance(agg, exp.Sum)
        and isinstance(agg.parent, exp.Window)
        and isinstance(agg.this, exp.Count)
        and isinstance(agg.this.this, exp.Star)
    )


def _on_the_minute(node: exp.Expression) -> exp.Expression:
    if _is_call(node, _BUCKET):
        column, width = node.expressions
        if _is_time(column) and _whole_minutes(width) and width != _ONE_MINUTE:
            return exp.Anonymous(this=_BUCKET, expressions=[minute_of(column), width.copy()])
    if isinstance(node, _BOUNDS) and _is_time(node.this) and _on_a_minute(node.expression):
        return type(node)(this=minute_of(node.this), expression=node.expression)
    return node


def _bare_time(column: exp.Column) -> bool:
    """A use of the time that the rewrites did not put on the minute."""
    if column.name != _TIME:
        return False
    call = column.parent
    return not (isinstance(call, exp.Anonymous) and _is_minute(call))


def minute_of(column: exp.Expression) -> exp.Expression:
    """The minute of a time, as ``by_minute`` keys it (a ``DateTime64``, rounded down).

    Rendered, it is :data:`kubetrail.store.clickhouse_schema.MINUTE_OF_TIME` (a test keeps the
    two equal: the projection matches only the same expression).
    """
    return exp.Anonymous(this=_BUCKET, expressions=[column.copy(), _ONE_MINUTE.copy()])


def _is_minute(call: exp.Anonymous) -> bool:
    return call.name == _BUCKET and call.expressions[1] == _ONE_MINUTE


def _is_call(node: exp.Expression | None, name: str) -> bool:
    return isinstance(node, exp.Anonymous) and node.name == name


def _is_time(node: exp.Expression) -> bool:
    return isinstance(node, exp.Column) and node.name == _TIME and not node.table


def _whole_minutes(width: exp.Expression) -> bool:
    if not isinstance(width, exp.Interval) or width.text("unit").upper() != "MILLISECOND":
        return False
    millis = width.this
    return isinstance(millis, exp.Literal) and int(millis.name) % 60_000 == 0


def _on_a_minute(value: exp.Expression) -> bool:
    """A timestamp literal (``toDateTime64('…', 6, 'UTC')``) with no seconds."""
    if not _is_call(value, "toDateTime64") or not value.expressions:
        return False
    text = value.expressions[0]
    if not isinstance(text, exp.Literal) or not text.is_string:
        return False
    try:
        instant = datetime.fromisoformat(text.name)
    except ValueError:
        return False
    offset = instant.utcoffset()
    whole = offset is None or offset.total_seconds() % 60 == 0
    return instant.second == 0 and instant.microsecond == 0 and whole
