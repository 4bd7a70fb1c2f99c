"""The minmax index on request_received, which newest-first listings use to skip granules.

The sorting key starts with ``cluster``, so ``ORDER BY request_received DESC LIMIT n`` over all
clusters cannot read in sorting-key order; ClickHouse's top-K optimizations use a minmax skipping
index on the sort column instead (``use_skip_indexes_for_top_k``, ``use_top_k_dynamic_filtering``).
How much they skip is a run-time heuristic (it varies with threads and parts), so the speed-up is
measured in ``bench/clickhouse_bench.py``; here: the index exists, and answers stay exact.
"""

from __future__ import annotations

from typing import Any

import pytest
from synthetic import LISTING_ROWS, fill_listing_rows

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")

LISTING = (
    "SELECT request_received, audit_id, request_uri FROM events "
    "WHERE is_final AND request_uri LIKE '%/secrets/%' "
    "ORDER BY request_received DESC LIMIT 100"
)


def test_the_events_table_has_the_time_index(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    found = store._client.query(
        "SELECT type, expr FROM system.data_skipping_indices "
        "WHERE database = currentDatabase() AND table = 'events' AND name = "
        "'request_received_minmax'"
    ).result_rows
    assert found == [("minmax", "request_received")]


def test_newest_first_listing_with_the_index_is_exact(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    fill_listing_rows(store)
    with_index = store._client.query(LISTING, settings={"final": 0})
    without = store._client.query(
        LISTING,
        settings={"final": 0, "use_skip_indexes_for_top_k": 0, "use_top_k_dynamic_filtering": 0},
    )
    assert with_index.result_rows == without.result_rows  # the same answer
    newest = [row[1] for row in with_index.result_rows]
    expected = [str(n) for n in range(LISTING_ROWS - 1, -1, -1) if n % 7 == 0][:100]
    assert newest == expected
