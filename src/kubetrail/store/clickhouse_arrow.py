"""ClickHouse results as Arrow tables with the types the embedded store gives.

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
