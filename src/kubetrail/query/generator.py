"""Expression tree -> sqlglot expressions, for any dialect.

Semantics (the Python predicate implements the same, see ``predicate.py``):

* A comparison with a missing value (NULL) is false, so ``verb!=get`` needs a verb while
  ``not verb=get`` also matches events without one. In SQL, ``NOT`` therefore wraps its operand
  in ``COALESCE(..., FALSE)``; ``AND``/``OR`` need nothing, as NULL behaves like false in WHERE.
* A multi-valued field (array column, JSON path with ``[*]``) matches when any element matches;
  ``f!=v`` on it means "has an element, and none equals v".
* Every user value becomes a sqlglot literal; nothing is pasted into SQL text.
* ``id=X`` and ``id in (...)`` with exact values also compare ``audit_key`` (a 64-bit hash of
  the auditID, ``kubetrail.model.derive``): the engines scan that integer column far faster
  than the strings, and the string comparison still decides.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlglot import exp

from kubetrail.model.derive import audit_key
from kubetrail.query import ast
from kubetrail.query.dialects.base import Dialect
from kubetrail.query.fields import Field

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ORDER = {"<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}
#: Fields a bare word searches (case-insensitive substring).
TEXT_FIELDS = ("request_uri", "username", "name")
_ELEMENT = "x"


def literal(value: ast.Value, dialect: Dialect) -> exp.Expression:
    """A value as a SQL literal built by sqlglot."""
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(repr(value))
    if isinstance(value, datetime):
        return dialect.timestamp(value)
    return exp.Literal.string(value.text)


def is_number(text: str) -> bool:
    return _NUMBER.fullmatch(text) is not None


class Generator:
    """Renders filters and field values of one query for one dialect.

    Args:
        dialect: the target dialect.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    # -- values --------------------------------------------------------------------------

    def field_sql(self, field: Field) -> exp.Expression:
        """The field's value: a column, the virtual ``sa`` or a JSON path into ``raw``."""
        if field.column == "sa":
            ns, name = exp.column("sa_namespace"), exp.column("sa_name")
            joined = exp.DPipe(this=ns, expression=exp.Literal.string(":"))
            return exp.Paren(this=exp.DPipe(this=joined, expression=name))
        if field.column is not None:
            return exp.column(field.column)
        raw = exp.column("raw")
        if field.is_multi:
            return self.dialect.json_texts(raw, field.path)
        return self.dialect.json_text(raw, field.path)

    def numeric_sql(self, field: Field) -> exp.Expression:
        """The field as a number (JSON text is converted; not a number -> NULL)."""
        value = self.field_sql(field)
        return self.dialect.to_double(value) if field.is_json else value

    # -- filters -------------------------------------------------------------------------

    def filter_sql(self, node: ast.Expr) -> exp.Expression:
        return getattr(self, f"{type(node).__name__.lower()}_sql")(node)

    def and_sql(self, node: ast.And) -> exp.Expression:
        return exp.and_(*(self._wrap(self.filter_sql(i)) for i in node.items))

    def or_sql(self, node: ast.Or) -> exp.Expression:
        return exp.or_(*(self._wrap(self.filter_sql(i)) for i in node.items))

    def not_sql(self, node: ast.Not) -> exp.Expression:
        inner = self.filter_sql(node.item)
        return exp.Not(this=exp.Coalesce(this=inner, expressions=[exp.false()]))

    def const_sql(self, node: ast.Const) -> exp.Expression:
        return exp.Boolean(this=node.value)

    def exists_sql(self, node: ast.Exists) -> exp.Expression:
        value = self.field_sql(node.field)
        if node.field.is_multi:
            present = exp.Not(this=exp.Is(this=exp.column(_ELEMENT), expression=exp.null()))
            return self.dialect.any_element(value, _ELEMENT, present)
        return exp.Not(this=exp.Is(this=value, expression=exp.null()))

    def text_sql(self, node: ast.Text) -> exp.Expression:
        parts = ("", *node.value.parts, "")
        ci = _has_case(node.value)
        likes = [self.dialect.like(exp.column(c), parts, ci) for c in TEXT_FIELDS]
        return exp.Paren(this=exp.or_(*likes))

    def in_sql(self, node: ast.In) -> exp.Expression:
        field = node.field
        if field.is_multi:
            element = Field(field.text, None, "string")
            cond = self._in_scalar(exp.column(_ELEMENT), element, node.values)
            return self.dialect.any_element(self.field_sql(field), _ELEMENT, cond)
        return self._in_scalar(self.field_sql(field), field, node.values)

    def _in_scalar(self, x: exp.Expression, field: Field, values: tuple) -> exp.Expression:
        exact = [v for v in values if not (isinstance(v, ast.Pattern) and v.has_wildcard)]
        conds: list[exp.Expression] = []
        if exact:
            found = exp.In(this=x, expressions=[literal(v, self.dialect) for v in exact])
            keys = _audit_keys(field, exact)
            if keys is not None:
                found = exp.and_(exp.In(this=exp.column("audit_key"), expressions=keys), found)
                found = exp.Paren(this=found) if len(values) > len(exact) else found
            conds.append(found)
        for value in values:
            if isinstance(value, ast.Pattern) and value.has_wildcard:
                conds.append(self.dialect.like(x, value.parts, ci=False))
        return conds[0] if len(conds) == 1 else exp.Paren(this=exp.or_(*conds))

    def compare_sql(self, node: ast.Compare) -> exp.Expression:
        field = node.field
        if not field.is_multi:
            return self._compare_scalar(self.field_sql(field), field, node.op, node.value)
        array = self.field_sql(field)
        value = node.value
        exact = isinstance(value, ast.Pattern) and not value.has_wildcard
        if node.op in ("=", "!="):
            if exact and field.type == "strings":
                has = self.dialect.array_contains(array, literal(value, self.dialect))
            else:
                cond = self._compare_scalar(exp.column(_ELEMENT), field, "=", value)
                has = self.dialect.any_element(array, _ELEMENT, cond)
            if node.op == "=":
                return has
            exists = self.exists_sql(ast.Exists(field))
            return exp.and_(exists, exp.Not(this=has))
        cond = self._compare_scalar(exp.column(_ELEMENT), field, node.op, value)
        return self.dialect.any_element(array, _ELEMENT, cond)

    def _compare_scalar(
        self, x: exp.Expression, field: Field, op: str, value: ast.Value
    ) -> exp.Expression:
        if isinstance(value, ast.Pattern):
            if op == "~":
                return self.dialect.regex(x, value.parts[0])
            if op == ":":
                parts = value.parts if value.has_wildcard else ("", value.parts[0], "")
                return self.dialect.like(x, parts, _has_case(value))
            if op in ("=", "!=") and value.has_wildcard:
                like = self.dialect.like(x, value.parts, ci=False)
                return like if op == "=" else exp.Not(this=like)
            if op in _ORDER and field.type == "json" and is_number(value.text):
                number = exp.Literal.number(repr(float(value.text)))
                return _ORDER[op](this=self.dialect.to_double(x), expression=number)
        lit = literal(value, self.dialect)
        if op == "=":
            keys = _audit_keys(field, [value])
            if keys is not None:
                key = exp.EQ(this=exp.column("audit_key"), expression=keys[0])
                return exp.and_(key, exp.EQ(this=x, expression=lit))
            return exp.EQ(this=x, expression=lit)
        if op == "!=":
            return exp.NEQ(this=x, expression=lit)
        return _ORDER[op](this=x, expression=lit)

    @staticmethod
    def _wrap(node: exp.Expression) -> exp.Expression:
        return exp.Paren(this=node) if isinstance(node, exp.Or) else node


def _audit_keys(field: Field, values: list[ast.Value]) -> list[exp.Expression] | None:
    """The ``audit_key`` literals of exact auditID values, or ``None`` for any other field."""
    if field.column != "audit_id" or not all(isinstance(v, ast.Pattern) for v in values):
        return None
    return [exp.Literal.number(audit_key(v.text)) for v in values]  # type: ignore[union-attr]


def _has_case(value: ast.Pattern) -> bool:
    """Whether case matters for the value: without cased letters, LIKE is exact and faster."""
    text = value.text
    return text.lower() != text or text.upper() != text
