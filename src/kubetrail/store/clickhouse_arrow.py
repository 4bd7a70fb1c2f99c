"""ClickHouse results as Arrow tables with the types the embedded store gives, and parameters
given the embedded store's way (``?`` in order) bound the ClickHouse way.

ClickHouse's own Arrow output writes ``DateTime`` as ``uint32`` seconds and counts as unsigned
integers, so a time bucket or a count would differ in type from DuckDB's answer. Results are
therefore read in ClickHouse's native format (typed by clickhouse-connect) and converted here:
timestamps to naive-UTC ``timestamp[us]``, integers to ``int32``/``int64``, floats to
``float64``, empty arrays to NULL.
Compiled queries return small results (aggregates, capped listings), so the conversion is cheap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from ..errors import StoreError

_WRAPPERS = re.compile(r"^(?:LowCardinality|Nullable|SimpleAggregateFunction)\((.*)\)$")
_SCALARS: dict[str, pa.DataType] = {
    "Bool": pa.bool_(),
    "Float32": pa.float64(),
    "Float64": pa.float64(),
    "Date": pa.date32(),
    "Date32": pa.date32(),
}


def arrow_type(name: str) -> pa.DataType:
    """The Arrow type for a ClickHouse type name (``Nullable(DateTime64(6, 'UTC'))``...)."""
    while match := _WRAPPERS.match(name):
        name = match.group(1)
    if name.startswith("Array("):
        return pa.list_(arrow_type(name[len("Array(") : -1]))
    if name.startswith("DateTime"):
        return pa.timestamp("us")
    if re.fullmatch(r"Int(8|16|32)|UInt(8|16)", name):
        return pa.int32()
    if re.fullmatch(r"UInt32|U?Int64", name):
        return pa.int64()
    if re.fullmatch(r"U?Int(128|256)", name):
        return pa.decimal128(38, 0)  # like DuckDB's HUGEINT
    if name.startswith("Decimal"):
        return pa.float64()
    return _SCALARS.get(name, pa.string())


def _naive(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, list):
        return [_naive(v) for v in value]
    return value


def to_arrow(
    names: Sequence[str], types: Sequence[Any], columns: Sequence[Sequence[Any]]
) -> pa.Table:
    """Build the Arrow table of a native-format result (clickhouse-connect's ``QueryResult``)."""
    arrays = []
    for index, ch_type in enumerate(types):
        target = arrow_type(ch_type.name)
        if names[index] == "audit_key":
            # The schema's one unsigned 64-bit column (DuckDB: UBIGINT). Counts are UInt64
            # too, but read as int64 like DuckDB's, so the choice goes by name.
            target = pa.uint64()
        values = list(columns[index]) if index < len(columns) else []
        if pa.types.is_timestamp(target) or (
            pa.types.is_list(target) and pa.types.is_timestamp(target.value_type)
        ):
            values = [_naive(v) for v in values]
        if pa.types.is_list(target):
            # ClickHouse arrays cannot be NULL: an absent list is stored empty, and read back
            # as NULL like in the embedded store (an explicitly empty list in an event reads
            # back as NULL too; every query treats both alike).
            values = [v if v else None for v in values]
        arrays.append(pa.array(values, type=target))
    return pa.table(arrays, names=list(names))


def empty_arrow(columns: Sequence[tuple[str, str]]) -> pa.Table:
    """An empty table with the given ``(name, ClickHouse type)`` columns."""
    return pa.table(
        [pa.array([], type=arrow_type(t)) for _, t in columns], names=[n for n, _ in columns]
    )


def _param_type(value: Any) -> str:
    if value is None:
        return "Nullable(String)"
    if isinstance(value, list | tuple):
        return "Array(String)"  # the lists bound here are lists of names and ids
    if isinstance(value, bool):
        return "Bool"
    if isinstance(value, int):
        return "Int64"
    if isinstance(value, float):
        return "Float64"
    if isinstance(value, datetime):
        return "DateTime64(6, 'UTC')"
    return "String"


def bind_positional(sql: str, params: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """Turn ``?`` placeholders into ClickHouse's typed ``{pN:Type}`` server-side parameters.

    The SQL is parsed (so a ``?`` inside a string literal stays text) and every unnamed
    placeholder, in order, takes the next value; naive datetimes are UTC.

    Raises:
        StoreError: the SQL does not parse, or the count of values does not match.
    """
    # sqlglot writes an unnamed placeholder as ``{?: }`` in ClickHouse SQL (not runnable there):
    # SQL built with sqlglot for this dialect arrives in that form.
    sql = sql.replace("{?: }", "?")
    try:
        tree = sqlglot.parse_one(sql, read="clickhouse")
    except sqlglot.errors.ParseError as exc:
        raise StoreError(f"cannot bind parameters: {exc}") from exc
    # Depth-first is the order of the text (breadth-first would bind `a = ? AND b = ?` crosswise).
    holes = [p for p in tree.find_all(exp.Placeholder, bfs=False) if p.this is None]
    if len(holes) != len(params):
        raise StoreError(f"{len(holes)} placeholders, {len(params)} parameters")
    named: dict[str, Any] = {}
    for index, (hole, value) in enumerate(zip(holes, params, strict=True)):
        name = f"p{index}"
        kind = exp.DataType.build(_param_type(value), dialect="clickhouse")
        hole.replace(exp.Placeholder(this=exp.var(name), kind=kind))
        if isinstance(value, datetime):
            value = _naive(value).isoformat(sep=" ", timespec="microseconds")
        named[name] = value
    return tree.sql(dialect="clickhouse"), named
