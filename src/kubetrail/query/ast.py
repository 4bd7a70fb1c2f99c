"""The expression tree of a query: a filter and the pipe stages after it.

The parser builds these nodes with every field resolved and every value checked against the
field's type, so the generators and the Python predicate only walk a valid tree. Nodes are
immutable; ``Span`` keeps where a node came from for error messages of later stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from kubetrail.query.fields import Field

#: Comparison operators. ``:`` is the case-insensitive match, ``~`` the regular expression.
Op = Literal["=", "!=", "<", "<=", ">", ">=", ":", "~"]


@dataclass(frozen=True)
class Span:
    """Where a node starts in the query text (1-based) and the text it covers."""

    line: int
    col: int
    text: str


@dataclass(frozen=True)
class Pattern:
    """A string value, split at its unescaped ``*`` wildcards.

    ``parts == ("prod-", "")`` is ``prod-*``; a value without wildcards has one part.
    """

    parts: tuple[str, ...]

    @property
    def has_wildcard(self) -> bool:
        return len(self.parts) > 1

    @property
    def text(self) -> str:
        """The value with wildcards shown as ``*`` (for labels and messages)."""
        return "*".join(self.parts)


#: A checked value: text (with wildcards), a number, a boolean or a UTC timestamp.
Value = Pattern | int | float | bool | datetime


@dataclass(frozen=True)
class Compare:
    """``field op value``."""

    field: Field
    op: Op
    value: Value
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class In:
    """``field in (v1, v2, ...)``: true when ``field = v`` for some ``v``."""

    field: Field
    values: tuple[Value, ...]
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Exists:
    """``exists(field)``: the field has a value (arrays: at least one element)."""

    field: Field
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Text:
    """A bare word or quoted string: case-insensitive match on requestURI, user or name."""

    value: Pattern
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


@dataclass(frozen=True)
class Const:
    """A constant truth value (used for filters the runner adds, never parsed)."""

    value: bool


Expr = Compare | In | Exists | Text | And | Or | Not | Const


@dataclass(frozen=True)
class Agg:
    """An aggregate: ``count()``, ``dc(f)``, ``min/max/avg/sum(f)``, ``p50/p95/p99(f)``."""

    func: str
    field: Field | None
    label: str


@dataclass(frozen=True)
class Stats:
    """``stats agg, ... [by f, ...]`` (``groupby a, b`` is ``stats count() by a, b``)."""

    aggs: tuple[Agg, ...]
    by: tuple[Field, ...] = ()


@dataclass(frozen=True)
class Top:
    """``top f [N]`` or, with ``rare=True``, ``rare f [N]``."""

    field: Field
    n: int = 10
    rare: bool = False


@dataclass(frozen=True)
class Timechart:
    """``timechart span=5m agg [by f]``: one row per (bucket, by-value)."""

    span_seconds: int
    agg: Agg
    by: Field | None = None


@dataclass(frozen=True)
class SortKey:
    """A sort key: an output column label, or a field when no aggregation came before."""

    name: str
    descending: bool
    field: Field | None = None


@dataclass(frozen=True)
class Sort:
    keys: tuple[SortKey, ...]


@dataclass(frozen=True)
class Head:
    n: int = 10


@dataclass(frozen=True)
class Fields:
    """``fields a, b``: output columns by label, or fields when no aggregation came before.

    ``fields[i]`` is the resolved field of ``names[i]``, or ``None`` for an output label only.
    """

    names: tuple[str, ...]
    fields: tuple[Field | None, ...]


Stage = Stats | Top | Timechart | Sort | Head | Fields
#: The stages that aggregate.
AGGREGATIONS = (Stats, Top, Timechart)


@dataclass(frozen=True)
class Query:
    """A parsed query.

    Attributes:
        filter: the filter, or ``None`` when the query has no filter terms.
        stages: the pipe stages, in order.
        names_stage: whether the query names ``stage`` anywhere (turns off the final-stage
            default).
        text: the query text.
    """

    filter: Expr | None
    stages: tuple[Stage, ...] = ()
    names_stage: bool = False
    text: str = ""

    @property
    def is_aggregate(self) -> bool:
        return any(isinstance(s, AGGREGATIONS) for s in self.stages)
