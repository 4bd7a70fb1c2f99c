"""The query suite of tests/query, run unchanged against a real ClickHouse.

The store-backed test modules of ``tests/query`` are loaded here by path and their tests and
fixtures re-exported: pytest resolves their ``store`` and ``rows`` fixtures from this
directory's conftest (ClickHouse) instead of ``tests/query/conftest.py`` (DuckDB). The two tests
that build DuckDB stores of their own are not repeated; ``test_same_results.py`` covers them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pytest

from kubetrail.store.base import BatchMeta
from kubetrail.store.clickhouse import ClickHouseStore

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")

QUERY_TESTS = Path(__file__).parents[1] / "query"
MODULES = ("test_end_to_end", "test_property", "test_safety")
#: Tests that open DuckDB stores themselves: nothing ClickHouse-specific to learn from them.
SKIPPED = {"test_time_range_and_cluster", "test_cli_formats"}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"_clickhouse_suite_{name}", QUERY_TESTS / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _exported(module: ModuleType) -> dict[str, Any]:
    names = [n for n in vars(module) if n.startswith("test_") and n not in SKIPPED]
    names += [n for n in ("events", "world") if hasattr(module, n)]
    return {n: getattr(module, n) for n in names}


_MODULES = {name: _load(name) for name in MODULES}
for _module in _MODULES.values():
    globals().update(_exported(_module))

_safety = _MODULES["test_safety"]


@pytest.fixture(scope="module")
def nasty_store(clickhouse_url: str) -> Iterator[ClickHouseStore]:
    """test_safety's hostile values, stored in ClickHouse."""
    store = ClickHouseStore(clickhouse_url, database="kt_nasty")
    rows = [_safety.row(i, user) for i, user in enumerate(_safety.NASTY)]
    table = pa.Table.from_pylist(rows, schema=_safety.EVENT_SCHEMA)
    store.write_batch(table, BatchMeta("c", "test", "b1"))
    yield store
    store.query("DROP DATABASE kt_nasty")
    store.close()


def test_suite_was_loaded() -> None:
    loaded = {n for n in globals() if n.startswith("test_")}
    assert {
        "test_count_by_verb",
        "test_sql_and_predicate_agree",
        "test_values_stay_literals",
    } <= loaded
