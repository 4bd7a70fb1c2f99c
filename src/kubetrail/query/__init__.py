"""The kubetrail query language: text -> parser -> expression tree -> SQL per dialect.

Public API:

* :func:`compile` turns query text into SQL for an engine (``"duckdb"`` or ``"clickhouse"``);
* :func:`parse` gives the checked expression tree;
* :func:`compile_predicate` gives a Python function over event rows for streaming use;
* :func:`run_query` compiles and runs a query on a :class:`~kubetrail.store.base.Store`.

The language is documented in ``docs/query-language.md``.
"""

from __future__ import annotations

from kubetrail.query.compiler import CompiledQuery, compile_query
from kubetrail.query.parser import parse
from kubetrail.query.predicate import compile_predicate
from kubetrail.query.runner import QueryResult, run_query

compile = compile_query  # the name the issue gives the API

__all__ = [
    "CompiledQuery",
    "QueryResult",
    "compile",
    "compile_predicate",
    "compile_query",
    "parse",
    "run_query",
]
