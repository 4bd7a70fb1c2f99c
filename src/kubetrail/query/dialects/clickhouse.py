"""ClickHouse, the scale-out engine.

Assumes the ``events`` table has the same column names, ``Array(String)`` for list columns,
``DateTime64(6, 'UTC')`` for timestamps and ``raw`` as a ``String`` of JSON.

ClickHouse's LIKE always treats ``\\`` as the escape character and has no ESCAPE clause
(https://clickhouse.com/docs/sql-reference/functions/string-search-functions#like). JSON is read
with the ``JSONExtract*`` functions, which take keys as separate arguments, so no path string is
parsed; ``[*]`` steps become ``arrayMap``/``arrayFlatten`` over ``JSONExtractArrayRaw``. Numbers
come back as written in the event (``1.50``), where DuckDB normalises them (``1.5``).
"""

from __future__ import annotations

from datetime import datetime

from sqlglot import exp

from kubetrail.query.dialects.base import Dialect, lambda_, like_pattern
from kubetrail.query.dialects.rollup import minute_rollup
from kubetrail.query.fields import JsonStep


def _call(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=list(args))


def _keys(steps: tuple[JsonStep, ...] | list[JsonStep]) -> list[exp.Expression]:
    return [exp.Literal.string(s.key) for s in steps]


def _text(doc: exp.Expression, steps: list[JsonStep]) -> exp.Expression:
    keys = _keys(steps)
    kind = _call("JSONType", doc, *keys)
    null = exp.cast(exp.null(), exp.DataType.build("Nullable(String)", dialect="clickhouse"))
    return _call(
        "multiIf",
        exp.EQ(this=kind, expression=exp.Literal.string("String")),
        _call("JSONExtractString", doc, *keys),
        exp.In(this=kind, expressions=[exp.Literal.string("Null")]),
        null,
        exp.Not(this=_call("JSONHas", doc, *keys)) if keys else exp.false(),
        null,
        _call("JSONExtractRaw", doc, *keys),
    )


class ClickHouse(Dialect):
    name = "clickhouse"

    def like(self, x: exp.Expression, parts: tuple[str, ...], ci: bool) -> exp.Expression:
        pattern, _ = like_pattern(parts)
        return (exp.ILike if ci else exp.Like)(this=x, expression=exp.Literal.string(pattern))

    def any_element(self, array: exp.Expression, var: str, cond: exp.Expression) -> exp.Expression:
        return _call("arrayExists", lambda_(var, cond), array)

    def array_contains(self, array: exp.Expression, value: exp.Expression) -> exp.Expression:
        return _call("has", array, value)

    def array_length(self, array: exp.Expression) -> exp.Expression:
        return _call("length", array)

    def byte_length(self, text: exp.Expression) -> exp.Expression:
        return _call("length", text)  # bytes; lengthUTF8 counts characters

    def json_text(self, raw: exp.Expression, steps: tuple[JsonStep, ...]) -> exp.Expression:
        return _text(raw, list(steps))

    def json_texts(self, raw: exp.Expression, steps: tuple[JsonStep, ...]) -> exp.Expression:
        groups: list[list[JsonStep]] = [[]]
        for step in steps:
            groups[-1].append(step)
            if step.each:
                groups.append([])
        first, *middle, last = groups
        docs: exp.Expression = _call("JSONExtractArrayRaw", raw, *_keys(first))
        for index, group in enumerate(middle):
            var = f"j{index}"
            inner = _call("JSONExtractArrayRaw", exp.column(var), *_keys(group))
            docs = _call("arrayFlatten", _call("arrayMap", lambda_(var, inner), docs))
        leaf = _text(exp.column("j"), last)
        return _call("arrayMap", lambda_("j", leaf), docs)

    def to_double(self, x: exp.Expression) -> exp.Expression:
        return _call("toFloat64OrNull", x)

    def quantile(self, x: exp.Expression, q: float) -> exp.Expression:
        # quantileExactInclusive interpolates linearly, like DuckDB's quantile_cont.
        # (sqlglot renders ParameterizedAgg as this(expressions)(params).)
        return exp.ParameterizedAgg(
            this="quantileExactInclusive", expressions=[exp.Literal.number(q)], params=[x]
        )

    def time_bucket(self, ts: exp.Expression, seconds: int) -> exp.Expression:
        # In milliseconds: the bucket stays a DateTime64 (of 1900 to 2299, like the column);
        # with a SECOND interval it is a DateTime, which clamps times outside 1970 to 2106.
        millis = exp.Literal.number(seconds * 1000)
        return _call(
            "toStartOfInterval", ts, exp.Interval(this=millis, unit=exp.Var(this="MILLISECOND"))
        )

    def timestamp(self, value: datetime) -> exp.Expression:
        text = exp.Literal.string(value.isoformat(sep=" ", timespec="microseconds"))
        return _call("toDateTime64", text, exp.Literal.number(6), exp.Literal.string("UTC"))

    def finish(self, select: exp.Select) -> exp.Select:
        # Counts over time read the by_minute projection (see dialects/rollup.py).
        return minute_rollup(select)
