"""The shape both engines' raw-batch INSERTs share (:mod:`.duckdb_raw`, :mod:`.clickhouse_raw`).

Each engine extracts the event's fields from its raw JSON in an inner SELECT (``x``) and derives
the rest in the outer one; only the expressions differ between dialects.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..model.schema import COLUMN_NAMES


def aliased(expressions: Mapping[str, str], separator: str = ",\n        ") -> str:
    """``expression AS name`` for each ``name: expression``, joined by ``separator``."""
    return separator.join(f"{sql} AS {name}" for name, sql in expressions.items())


def event_columns(derived: Mapping[str, str]) -> str:
    """The outer SELECT list: every event column, from ``derived`` or else ``x.<name>``."""
    return aliased({name: derived.get(name, f"x.{name}") for name in COLUMN_NAMES}, ",\n    ")
