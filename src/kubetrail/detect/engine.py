"""Stateless rules over a batch: a few DuckDB statements per batch, not a loop over events.

Every enabled stateless rule becomes ``SELECT <rule>, _i FROM rows WHERE when AND NOT
(except...)``, with the filters compiled by the query language's own generator (the same SQL as
``kubetrail query``); the rules are joined with ``UNION ALL`` into one statement prepared once.
A batch is first narrowed, in one scan of its Arrow table that reads no JSON, to the rows that
some rule could match (:func:`cheap_part`); those rows are copied into the engine's table and
the prepared statement runs on them. Only matching rows come back to Python, to fill keys and
messages.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from ..errors import RuleError
from ..query import ast
from ..query.compiler import scope_filter
from ..query.dialects import DIALECTS
from ..query.fields import resolve
from ..query.generator import Generator
from ..query.parser import parse
from ..query.predicate import field_value
from .patches import with_patch_objects
from .rules import Rule

_PLACEHOLDER_FIELDS: dict[str, Any] = {}
#: Batches larger than this are first narrowed to the rows some rule could match (``_run``).
SMALL_BATCH = 2_048


@dataclass(frozen=True)
class Match:
    """One event that a rule matched (or one group, for a scheduled rule).

    Attributes:
        rule: the rule.
        cluster: the event's cluster.
        key: the alert key (the values of the rule's ``key`` or ``by`` fields, ``|``-joined).
        time: request time of the (last) event, naive UTC.
        audit_ids: the events' auditIDs.
        message: the rule's output template, filled from the event.
        count: requests this match stands for.
    """

    rule: Rule
    cluster: str
    key: str
    time: datetime
    audit_ids: tuple[str, ...]
    message: str
    count: int = 1


def rule_filter(rule: Rule, dialect: str = "duckdb") -> exp.Expression:
    """The SQL condition of a rule: ``when`` (final stage unless it names one), minus ``except``.

    Raises:
        RuleError: a filter does not compile for the dialect.
    """
    gen = Generator(DIALECTS[dialect]())
    try:
        cond = gen.filter_sql(_scoped(rule.when))
        excepts = [gen.filter_sql(f) for f in (parse(t).filter for t in rule.exceptions) if f]
    except Exception as exc:  # a construct the dialect cannot express
        raise RuleError(f"{rule.source}: rule {rule.id}: {exc}") from exc
    if not excepts:
        return cond
    excluded = exp.Coalesce(this=exp.Paren(this=exp.or_(*excepts)), expressions=[exp.false()])
    return exp.and_(exp.Paren(this=cond), exp.Not(this=excluded))


def cheap_part(node: ast.Expr) -> ast.Expr | None:
    """The part of a filter that reads only columns (no JSON), implied by the filter itself.

    ``None`` means "could be anything" (true). Rows outside ``cheap_part(f)`` never match ``f``,
    so the engine first looks for rows that any rule could match, in one scan without the large
    ``raw`` column, and runs the rules only on those.
    """
    if isinstance(node, ast.And):
        parts = [p for p in (cheap_part(i) for i in node.items) if p is not None]
        return None if not parts else parts[0] if len(parts) == 1 else ast.And(tuple(parts))
    if isinstance(node, ast.Or):
        parts = [cheap_part(i) for i in node.items]
        if any(p is None for p in parts):
            return None
        return ast.Or(tuple(p for p in parts if p is not None))
    if isinstance(node, ast.Not):
        return node if _column_only(node.item) else None
    return node if _column_only(node) else None


def _column_only(node: ast.Expr) -> bool:
    if isinstance(node, ast.And | ast.Or):
        return all(_column_only(i) for i in node.items)
    if isinstance(node, ast.Not):
        return _column_only(node.item)
    if isinstance(node, ast.Compare | ast.In | ast.Exists):
        return not node.field.is_json
    return True  # Const, Text (columns only)


def _scoped(text: str) -> Any:
    scoped = scope_filter(parse(text))
    assert scoped is not None
    return scoped


def render(template: str, row: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """Fill ``{field}`` placeholders from an event row (lists are comma-joined; missing or
    empty: ``-``).

    ``extra`` gives the values of the scheduled rules' placeholders (count, window, ...).
    """
    out: list[str] = []
    pos = 0
    while (start := template.find("{", pos)) >= 0:
        end = template.find("}", start)
        if end < 0:
            break
        out.append(template[pos:start])
        name = template[start + 1 : end].strip()
        if extra is not None and name in extra:
            out.append(_text(extra[name]))
        else:  # an empty value reads as missing: "allowed ()" says nothing
            out.append(_text(field_value(row, _field(name))) or "-")
        pos = end + 1
    out.append(template[pos:])
    return "".join(out)


def _field(name: str) -> Any:
    found = _PLACEHOLDER_FIELDS.get(name)
    if found is None:
        found = _PLACEHOLDER_FIELDS[name] = resolve(name)
    return found


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        shown = [str(v) for v in value if v is not None]
        return ",".join(shown) if shown else "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def key_of(fields: Sequence[str], row: dict[str, Any]) -> str:
    """The alert key of an event: the values of ``fields``, ``|``-joined."""
    return "|".join(_text(field_value(row, _field(f))) for f in fields) if fields else ""


class BatchEngine:
    """Runs every enabled stateless rule on Arrow batches of events.

    Args:
        rules: the rule set; only enabled stateless rules are used here.
    """

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = [r for r in rules if r.enabled and r.stateless]
        self._con = duckdb.connect(":memory:", config={"threads": 1})
        self._lock = threading.Lock()
        self._prepared = False
        self.prefilter_sql = self._prefilter()

    def _prefilter(self) -> str | None:
        """``SELECT _i`` of the rows some rule could match, or ``None`` when that is every row."""
        parts = [cheap_part(_scoped(r.when)) for r in self.rules]
        if not parts or any(p is None for p in parts):
            return None
        gen = Generator(DIALECTS["duckdb"]())
        cond = exp.or_(*(exp.Paren(this=gen.filter_sql(p)) for p in parts if p is not None))
        return exp.select(exp.column("_i")).from_("_batch").where(cond).sql("duckdb")

    def _union(self, table: str) -> str:
        selects = [
            exp.select(exp.alias_(exp.Literal.number(i), "r"), exp.column("_i"))
            .from_(table)
            .where(rule_filter(rule))
            for i, rule in enumerate(self.rules)
        ]
        if not selects:
            return ""
        return functools.reduce(lambda a, b: exp.union(a, b, distinct=False), selects).sql("duckdb")

    def scan(self, table: pa.Table) -> list[Match]:
        """The matches of every stateless rule in one batch (schema ``EVENT_SCHEMA``)."""
        if not self.rules or table.num_rows == 0:
            return []
        view = table.append_column("_i", pa.array(range(table.num_rows), pa.int64()))
        with self._lock:
            hits = self._run(view)
        if not hits:
            return []
        rows = sorted({i for _, i in hits})
        by_index = dict(zip(rows, view.take(pa.array(rows)).to_pylist(), strict=True))
        matches = []
        for r, i in sorted(hits):
            rule, row = self.rules[r], by_index[i]
            matches.append(
                Match(
                    rule=rule,
                    cluster=row["cluster"] or "",
                    key=key_of(rule.key, row),
                    time=row["request_received"],
                    audit_ids=(row["audit_id"],) if row["audit_id"] else (),
                    message=render(rule.output, row),
                )
            )
        return matches

    def _run(self, view: pa.Table) -> list[tuple[int, int]]:
        con = self._con
        if self.prefilter_sql is not None and view.num_rows > SMALL_BATCH:
            con.register("_batch", view)
            try:
                rows = [i for (i,) in con.execute(self.prefilter_sql).fetchall()]
            finally:
                con.unregister("_batch")
            if not rows:
                return []
            view = view.take(pa.array(rows, pa.int64()))
        # Only now, on the rows left: patch bodies as the objects they write (one JSON parse
        # per patch event).
        view = with_patch_objects(view)
        # Planning the union of every rule costs 0.1-1.5 s, far more than running it: the rows
        # are copied into a table of the engine's own, which a statement prepared once reads (a
        # prepared statement over a registered Arrow table would keep reading the first one).
        con.register("_batch", view)
        try:
            if not self._prepared:
                con.execute("CREATE TEMP TABLE _rows AS SELECT * FROM _batch LIMIT 0")
                con.execute("PREPARE _rules AS " + self._union("_rows"))
                self._prepared = True
            con.execute("INSERT INTO _rows SELECT * FROM _batch")
            try:
                return con.execute("EXECUTE _rules").fetchall()
            finally:
                con.execute("DELETE FROM _rows")
        finally:
            con.unregister("_batch")

    def close(self) -> None:
        """Release the engine's DuckDB connection."""
        self._con.close()
