"""Expression tree -> a Python function over event rows, for streaming (detections per batch).

A row is a mapping with the columns of :data:`~kubetrail.model.schema.EVENT_SCHEMA` (for
example ``table.to_pylist()`` of a normalised batch); ``raw`` may be the JSON text or the parsed
dict. The predicate gives the same answer as the SQL the generator emits for DuckDB (the
property test in ``tests/query`` holds them to it): NULL comparisons are false, ``not`` is plain
negation, multi-valued fields match when any element does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from kubetrail.query import ast
from kubetrail.query.compiler import scope_filter
from kubetrail.query.fields import Field, JsonStep
from kubetrail.query.generator import TEXT_FIELDS, is_number
from kubetrail.query.parser import parse

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]
_MISSING = object()


def compile_predicate(
    text: str,
    *,
    time_from: datetime | None = None,
    time_to: datetime | None = None,
    cluster: str | Sequence[str] | None = None,
) -> Predicate:
    """Compile the filter of a query (pipe stages are ignored) into a row predicate.

    Args:
        text: the query.
        time_from: only requests received at or after this naive-UTC time.
        time_to: only requests received before this naive-UTC time.
        cluster: only events of this cluster.

    Returns:
        A function ``row -> bool``. The final-stage default applies as in SQL.

    Raises:
        ParseError: the text is not a valid query.
    """
    expr = scope_filter(parse(text), time_from, time_to, cluster)
    if expr is None:
        return lambda row: True
    return _Evaluator().build(expr)


def json_text(value: Any) -> str | None:
    """A JSON value as DuckDB's ``json_extract_string`` shows it."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def json_values(doc: Any, steps: tuple[JsonStep, ...]) -> list[Any]:
    """The values at a path; ``[*]`` steps walk arrays, missing keys yield nothing."""
    current = [doc]
    for step in steps:
        found: list[Any] = []
        for item in current:
            if not isinstance(item, dict) or step.key not in item:
                continue
            value = item[step.key]
            if step.each:
                if isinstance(value, list):
                    found.extend(value)
            else:
                found.append(value)
        current = found
    return current


def field_value(row: Row, field: Field) -> Any:
    """The value of a field in a row: a scalar, a list for multi-valued fields, or None."""
    if field.column == "sa":
        ns, name = row.get("sa_namespace"), row.get("sa_name")
        return None if ns is None or name is None else f"{ns}:{name}"
    if field.column is not None:
        return row.get(field.column)
    raw = row.get("raw")
    if raw is None:
        return [] if field.is_multi else None
    doc = json.loads(raw) if isinstance(raw, str | bytes) else raw
    values = [json_text(v) for v in json_values(doc, field.path)]
    if field.is_multi:
        return values
    return values[0] if values else None


def like_regex(parts: tuple[str, ...], ci: bool) -> re.Pattern[str]:
    """The regular expression for a wildcard pattern (anchored; ``*`` matches anything)."""
    body = ".*".join(re.escape(p.lower() if ci else p) for p in parts)
    return re.compile(body, re.DOTALL)


class _Evaluator:
    """Builds closures from the tree, so a row is evaluated without walking the tree again."""

    def build(self, node: ast.Expr) -> Predicate:
        return getattr(self, f"_{type(node).__name__.lower()}")(node)

    def _and(self, node: ast.And) -> Predicate:
        items = [self.build(i) for i in node.items]
        return lambda row: all(p(row) for p in items)

    def _or(self, node: ast.Or) -> Predicate:
        items = [self.build(i) for i in node.items]
        return lambda row: any(p(row) for p in items)

    def _not(self, node: ast.Not) -> Predicate:
        inner = self.build(node.item)
        return lambda row: not inner(row)

    def _const(self, node: ast.Const) -> Predicate:
        return lambda row: node.value

    def _exists(self, node: ast.Exists) -> Predicate:
        field = node.field
        if field.is_multi:
            return lambda row: any(v is not None for v in field_value(row, field) or ())
        return lambda row: field_value(row, field) is not None

    def _text(self, node: ast.Text) -> Predicate:
        test = _matcher(":", ast.Pattern(("", *node.value.parts, "")), "string")

        def match(row: Row) -> bool:
            return any((v := row.get(c)) is not None and test(v) for c in TEXT_FIELDS)

        return match

    def _in(self, node: ast.In) -> Predicate:
        tests = [_matcher("=", v, node.field.type) for v in node.values]
        return self._any(node.field, lambda v: any(t(v) for t in tests))

    def _compare(self, node: ast.Compare) -> Predicate:
        field = node.field
        if field.is_multi and node.op == "!=":
            test = _matcher("=", node.value, field.type)

            def differs(row: Row) -> bool:
                values = [v for v in field_value(row, field) or () if v is not None]
                return bool(values) and not any(test(v) for v in values)

            return differs
        return self._any(field, _matcher(node.op, node.value, field.type))

    @staticmethod
    def _any(field: Field, test: Callable[[Any], bool]) -> Predicate:
        if field.is_multi:
            return lambda row: any(v is not None and test(v) for v in field_value(row, field) or ())
        return lambda row: (v := field_value(row, field)) is not None and test(v)


def _matcher(op: str, value: ast.Value, kind: str) -> Callable[[Any], bool]:
    """A test of one non-null value against ``op value``."""
    if isinstance(value, ast.Pattern):
        if op == "~":
            regex = re.compile(value.parts[0])
            return lambda v: regex.search(v) is not None
        if op == ":":
            parts = value.parts if value.has_wildcard else ("", value.parts[0], "")
            pattern = like_regex(parts, ci=True)
            return lambda v: pattern.fullmatch(v.lower()) is not None
        if op in ("=", "!=") and value.has_wildcard:
            pattern = like_regex(value.parts, ci=False)
            if op == "=":
                return lambda v: pattern.fullmatch(v) is not None
            return lambda v: pattern.fullmatch(v) is None
        if op in ("<", "<=", ">", ">=") and kind == "json" and is_number(value.text):
            number = float(value.text)
            return lambda v: (d := _to_double(v)) is not None and _ORDER[op](d, number)
        target: Any = value.text
    else:
        target = value
    if op == "=":
        return lambda v: v == target
    if op == "!=":
        return lambda v: v != target
    compare = _ORDER[op]
    return lambda v: compare(v, target)


def _to_double(text: str) -> float | None:
    try:
        return float(text) if "_" not in text else None
    except ValueError:
        return None


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
