"""Query -> one SQL statement: the filter becomes WHERE, the pipe stages shape the SELECT.

Stages apply in order. A plain filter lists events (default columns, newest first); ``stats``,
``groupby``, ``top``, ``rare`` and ``timechart`` aggregate (one aggregation per query, before
any ``head``); ``sort``, ``head`` and ``fields`` work on whatever came before. A ``sort`` after a
``head`` sorts the rows ``head`` kept, through a subquery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlglot import exp

from kubetrail.errors import ParseError, UnsupportedError
from kubetrail.query import ast
from kubetrail.query.dialects import DIALECTS, Dialect
from kubetrail.query.fields import resolve
from kubetrail.query.generator import Generator
from kubetrail.query.parser import parse
from kubetrail.store.base import EVENTS_TABLE

#: Columns of a plain event listing: (label, field name).
LISTING_FIELDS: tuple[str, ...] = (
    "time",
    "cluster",
    "user",
    "verb",
    "resource",
    "namespace",
    "name",
    "code",
)


@dataclass(frozen=True)
class CompiledQuery:
    """A query compiled for one engine.

    Attributes:
        sql: the SQL statement; user values are literals built by sqlglot.
        columns: the labels of the result's columns, in order.
        dialect: the dialect the SQL is written in.
        query: the parsed query.
        aggregated: whether the query aggregates (stats, groupby, top, rare, timechart).
    """

    sql: str
    columns: tuple[str, ...]
    dialect: str
    query: ast.Query
    aggregated: bool
    expression: exp.Select = field(repr=False, compare=False)

    def pretty(self) -> str:
        """The SQL, formatted over several lines (for ``--explain``)."""
        return self.expression.sql(dialect=self.dialect, pretty=True)


def compile_query(
    text: str,
    dialect: str = "duckdb",
    *,
    time_from: datetime | None = None,
    time_to: datetime | None = None,
    cluster: str | Sequence[str] | None = None,
    limit: int | None = None,
) -> CompiledQuery:
    """Compile query text to SQL for one engine.

    Args:
        text: the query.
        dialect: ``"duckdb"`` (default) or ``"clickhouse"``.
        time_from: only requests received at or after this naive-UTC time.
        time_to: only requests received before this naive-UTC time.
        cluster: only events of this cluster (or of these clusters: an environment's).
        limit: the most rows to return; ``None`` for no cap beyond the query's own ``head``.

    Returns:
        The :class:`CompiledQuery`.

    Raises:
        ParseError: the text is not a valid query.
        UnsupportedError: the dialect is unknown or cannot express the query.
    """
    if dialect not in DIALECTS:
        raise UnsupportedError(f"unknown dialect '{dialect}'; use one of {sorted(DIALECTS)}")
    query = parse(text)
    builder = _Builder(DIALECTS[dialect](), query)
    builder.where(scope_filter(query, time_from, time_to, cluster))
    for stage in query.stages:
        builder.apply(stage)
    builder.cap(limit)
    select = builder.dialect.finish(builder.select)
    return CompiledQuery(
        select.sql(dialect=dialect),
        tuple(builder.labels),
        dialect,
        query,
        query.is_aggregate,
        select,
    )


def scope_filter(
    query: ast.Query,
    time_from: datetime | None = None,
    time_to: datetime | None = None,
    cluster: str | Sequence[str] | None = None,
) -> ast.Expr | None:
    """The query's filter with the final-stage default, time range and cluster(s) added."""
    terms: list[ast.Expr] = []
    if not query.names_stage:
        terms.append(ast.Compare(resolve("is_final"), "=", True))
    if isinstance(cluster, str):
        terms.append(ast.Compare(resolve("cluster"), "=", ast.Pattern((cluster,))))
    elif cluster is not None:
        values = tuple(ast.Pattern((name,)) for name in cluster)
        terms.append(ast.In(resolve("cluster"), values))
    if time_from is not None:
        terms.append(ast.Compare(resolve("time"), ">=", time_from))
    if time_to is not None:
        terms.append(ast.Compare(resolve("time"), "<", time_to))
    if query.filter is not None:
        terms.append(query.filter)
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else ast.And(tuple(terms))


class _Builder:
    """Keeps the SELECT being built and the expression behind each output label."""

    def __init__(self, dialect: Dialect, query: ast.Query) -> None:
        self.gen = Generator(dialect)
        self.dialect = dialect
        self.query = query
        self.aggregated = False
        self.limited = False
        self.wrapped = False
        names = list(LISTING_FIELDS)
        if query.names_stage:
            names.insert(2, "stage")
        self.exprs = {n: self.gen.field_sql(resolve(n)) for n in names}
        time = self.gen.field_sql(resolve("time"))
        self.select = self._project(exp.select().from_(EVENTS_TABLE, copy=False))
        self.select = self.select.order_by(exp.Ordered(this=time, desc=True), copy=False)

    @property
    def labels(self) -> list[str]:
        return list(self.exprs)

    def _project(self, select: exp.Select) -> exp.Select:
        aliases = [exp.alias_(e, label, quoted=True) for label, e in self.exprs.items()]
        return select.select(*aliases, append=False, copy=False)

    def where(self, expr: ast.Expr | None) -> None:
        if expr is not None:
            self.select = self.select.where(self.gen.filter_sql(expr), copy=False)

    def apply(self, stage: ast.Stage) -> None:
        getattr(self, f"_{type(stage).__name__.lower()}")(stage)

    def cap(self, limit: int | None) -> None:
        if limit is None:
            return
        current = self.select.args.get("limit")
        if current is not None:
            limit = min(limit, int(current.expression.name))
        self.select = self.select.limit(limit, copy=False)

    def _error(self, message: str, name: str) -> ParseError:
        text = self.query.text
        at = text.rfind(name)
        col = at + 1 if at >= 0 else 1
        line = text.count("\n", 0, max(at, 0)) + 1
        col -= text.rfind("\n", 0, max(at, 0)) + 1
        return ParseError(message, query=text, line=line, col=col, highlight=name)

    def _lookup(self, name: str) -> str | None:
        if name in self.exprs:
            return name
        folded = {label.lower(): label for label in self.exprs}
        return folded.get(name.lower())

    # -- aggregations --------------------------------------------------------------------

    def _begin_aggregation(self, what: str) -> None:
        if self.aggregated or self.limited:
            raise UnsupportedError(f"'{what}' must be the only aggregation and come before head")
        self.aggregated = True
        self.select.set("order", None)

    def _agg_sql(self, agg: ast.Agg) -> exp.Expression:
        if agg.func == "count":
            arg = exp.Star() if agg.field is None else self.gen.field_sql(agg.field)
            return exp.Count(this=arg)
        assert agg.field is not None
        if agg.func == "dc":
            return exp.Count(this=exp.Distinct(expressions=[self.gen.field_sql(agg.field)]))
        if agg.func in ("min", "max"):
            node = exp.Min if agg.func == "min" else exp.Max
            return node(this=self.gen.field_sql(agg.field))
        value = self.gen.numeric_sql(agg.field)
        if agg.func == "avg":
            return exp.Avg(this=value)
        if agg.func == "sum":
            return exp.Sum(this=value)
        return self.dialect.quantile(value, int(agg.func[1:]) / 100)

    def _group(self, by: dict[str, exp.Expression], aggs: dict[str, exp.Expression]) -> None:
        self.exprs = {**by, **aggs}
        self.select = self._project(self.select)
        if by:
            self.select = self.select.group_by(*(e.copy() for e in by.values()), copy=False)

    def _stats(self, stage: ast.Stats) -> None:
        self._begin_aggregation("stats")
        by = {f.text: self.gen.field_sql(f) for f in stage.by}
        self._group(by, {a.label: self._agg_sql(a) for a in stage.aggs})
        if by:
            self.select = self.select.order_by(
                *(exp.Ordered(this=e.copy()) for e in by.values()), copy=False
            )

    def _top(self, stage: ast.Top) -> None:
        self._begin_aggregation("rare" if stage.rare else "top")
        value = self.gen.field_sql(stage.field)
        count = exp.Count(this=exp.Star())
        total = exp.Window(this=exp.Sum(this=exp.Count(this=exp.Star())))
        percent = exp.Div(
            this=exp.Mul(this=count.copy(), expression=exp.Literal.number("100.0")),
            expression=total,
        )
        self._group({stage.field.text: value}, {"count": count, "percent": percent})
        self.select = self.select.order_by(
            exp.Ordered(this=count.copy(), desc=not stage.rare),
            exp.Ordered(this=value.copy()),
            copy=False,
        )
        self.select = self.select.limit(stage.n, copy=False)
        self.limited = True

    def _timechart(self, stage: ast.Timechart) -> None:
        self._begin_aggregation("timechart")
        bucket = self.dialect.time_bucket(self.gen.field_sql(resolve("time")), stage.span_seconds)
        by = {"time": bucket}
        if stage.by is not None:
            by[stage.by.text] = self.gen.field_sql(stage.by)
        self._group(by, {stage.agg.label: self._agg_sql(stage.agg)})
        self.select = self.select.order_by(
            *(exp.Ordered(this=e.copy()) for e in by.values()), copy=False
        )

    # -- sort, head, fields --------------------------------------------------------------

    def _sort(self, stage: ast.Sort) -> None:
        if self.limited:
            self._wrap()
        keys = []
        for key in stage.keys:
            label = self._lookup(key.name)
            if label is None and key.field is not None:
                label = self._label_of(key.field.column)
            if label is not None:
                keys.append(exp.Ordered(this=self.exprs[label].copy(), desc=key.descending))
            elif key.field is not None and not (self.aggregated or self.wrapped):
                keys.append(exp.Ordered(this=self.gen.field_sql(key.field), desc=key.descending))
            else:
                raise self._error(self._unknown(key.name), key.name)
        self.select.set("order", None)
        self.select = self.select.order_by(*keys, copy=False)

    def _head(self, stage: ast.Head) -> None:
        current = self.select.args.get("limit")
        n = stage.n if current is None else min(stage.n, int(current.expression.name))
        self.select = self.select.limit(n, copy=False)
        self.limited = True

    def _fields(self, stage: ast.Fields) -> None:
        exprs: dict[str, exp.Expression] = {}
        for name, f in zip(stage.names, stage.fields, strict=True):
            label = self._lookup(name) or self._label_of(f.column if f else None)
            if self.aggregated or self.wrapped:
                if label is None:
                    raise self._error(self._unknown(name), name)
                exprs[label] = self.exprs[label]
            else:
                assert f is not None
                exprs[name] = self.gen.field_sql(f)
        self.exprs = exprs
        self.select = self._project(self.select)

    def _label_of(self, column: str | None) -> str | None:
        """The output label whose expression is ``column`` (``user`` for ``username``)."""
        if column is None:
            return None
        target = exp.column(column)
        return next((label for label, e in self.exprs.items() if e == target), None)

    def _unknown(self, name: str) -> str:
        import difflib

        near = difflib.get_close_matches(name, self.labels, n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        return f"no output column '{name}' here{hint} (columns: {', '.join(self.labels)})"

    def _wrap(self) -> None:
        inner = self.select.subquery("q", copy=False)
        self.exprs = {label: exp.column(label, quoted=True) for label in self.exprs}
        self.select = self._project(exp.select().from_(inner, copy=False))
        self.wrapped = True
        self.limited = False
