"""SQL dialects of the query compiler: what differs between the engines, as small classes.

The generator (:mod:`kubetrail.query.generator`) builds everything that is the same in every
engine; a dialect renders the few constructs that differ (pattern matching, arrays, JSON paths,
quantiles, time buckets, timestamp literals). Every renderer returns a sqlglot expression.
"""

from __future__ import annotations

from kubetrail.query.dialects.base import Dialect
from kubetrail.query.dialects.clickhouse import ClickHouse
from kubetrail.query.dialects.duckdb import DuckDB

#: Dialects by the name a :class:`~kubetrail.store.base.Store` gives in ``Store.dialect``.
DIALECTS: dict[str, type[Dialect]] = {"duckdb": DuckDB, "clickhouse": ClickHouse}

__all__ = ["DIALECTS", "ClickHouse", "Dialect", "DuckDB"]
