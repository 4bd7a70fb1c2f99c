"""DuckDB, the embedded engine.

Lambdas use the ``lambda x: ...`` syntax (the ``->`` arrow is deprecated since DuckDB 1.3).
JSON paths are JSONPath strings with every key quoted (``$."a"."b"[*]."c"``); DuckDB returns a
list for a path with ``[*]``. LIKE has no default escape character, so a pattern that needs one
gets ``ESCAPE '\\'`` (https://duckdb.org/docs/stable/sql/functions/pattern_matching).
"""

from __future__ import annotations

from datetime import datetime

from sqlglot import exp

from kubetrail.query.dialects.base import Dialect, lambda_, like_pattern
from kubetrail.query.fields import JsonStep


def _json_path(steps: tuple[JsonStep, ...]) -> str:
    # Keys with '"' or '\' are rejected when the field is resolved, so quoting is enough here.
    return "$" + "".join(f'."{s.key}"' + ("[*]" if s.each else "") for s in steps)


class DuckDB(Dialect):
    name = "duckdb"

    def like(self, x: exp.Expression, parts: tuple[str, ...], ci: bool) -> exp.Expression:
        pattern, escaped = like_pattern(parts)
        node = (exp.ILike if ci else exp.Like)(this=x, expression=exp.Literal.string(pattern))
        if escaped:
            return exp.Escape(this=node, expression=exp.Literal.string("\\"))
        return node

    def any_element(self, array: exp.Expression, var: str, cond: exp.Expression) -> exp.Expression:
        matches = exp.Anonymous(this="list_filter", expressions=[array, lambda_(var, cond)])
        return exp.GT(this=self.array_length(matches), expression=exp.Literal.number(0))

    def array_contains(self, array: exp.Expression, value: exp.Expression) -> exp.Expression:
        return exp.Anonymous(this="list_contains", expressions=[array, value])

    def array_length(self, array: exp.Expression) -> exp.Expression:
        return exp.Anonymous(this="len", expressions=[array])

    def byte_length(self, text: exp.Expression) -> exp.Expression:
        return exp.Anonymous(this="strlen", expressions=[text])  # bytes; length counts characters

    def json_text(self, raw: exp.Expression, steps: tuple[JsonStep, ...]) -> exp.Expression:
        path = exp.Literal.string(_json_path(steps))
        return exp.Anonymous(this="json_extract_string", expressions=[raw, path])

    def json_texts(self, raw: exp.Expression, steps: tuple[JsonStep, ...]) -> exp.Expression:
        return self.json_text(raw, steps)

    def to_double(self, x: exp.Expression) -> exp.Expression:
        return exp.TryCast(this=x, to=exp.DataType.build("DOUBLE"))

    def quantile(self, x: exp.Expression, q: float) -> exp.Expression:
        return exp.Anonymous(this="quantile_cont", expressions=[x, exp.Literal.number(q)])

    def time_bucket(self, ts: exp.Expression, seconds: int) -> exp.Expression:
        # time_bucket's default origin (2000-01-03) is a whole number of days after the epoch,
        # and spans divide a day, so buckets are epoch-aligned like ClickHouse's.
        width = exp.Interval(this=exp.Literal.string(str(seconds)), unit=exp.Var(this="SECOND"))
        return exp.Anonymous(this="time_bucket", expressions=[width, ts])

    def timestamp(self, value: datetime) -> exp.Expression:
        text = value.isoformat(sep=" ", timespec="microseconds")
        return exp.cast(exp.Literal.string(text), exp.DataType.build("TIMESTAMP"))
