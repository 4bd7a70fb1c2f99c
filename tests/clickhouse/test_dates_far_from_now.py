"""Events whose request time lies outside 1970–2149 are partitioned, queried and moved right.

ClickHouse's ``toDate`` wraps a ``DateTime64`` outside 1970–2149 (1950-06-01 becomes
2129-11-05), so a ``PARTITION BY toDate(…)`` table put such rows in partitions named for another
century and partition pruning dropped them from time-range queries. The schema partitions by
``toDate32``; these tests hold both engines to the same answers at the edges.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kubetrail.migrate import migrate
from kubetrail.pipeline import ingest_paths
from kubetrail.query import run_query
from kubetrail.query.runner import parse_instant
from kubetrail.store import DuckDBStore, open_store
from kubetrail.store.clickhouse import ClickHouseStore

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")

SAMPLE = Path(__file__).parents[1] / "data" / "events" / "audit2rbac-demo-v1.jsonl"

#: Request times from 1900 to 2299 (``DateTime64``'s range), two events each.
TIMES = [
    "1901-03-04T05:06:07.000001Z",
    "1950-06-01T00:00:00.000000Z",
    "1969-12-31T23:59:59.999999Z",
    "1970-01-01T00:00:00.000000Z",
    "2026-11-23T12:00:00.000000Z",
    "2149-06-06T23:59:59.000000Z",
    "2150-01-01T00:00:00.000000Z",
    "2260-07-04T10:00:00.000000Z",
]


def _write_events(path: Path) -> int:
    base = json.loads(SAMPLE.read_text().splitlines()[0])
    lines = []
    for i, when in enumerate(TIMES):
        for copy in range(2):
            event = dict(base, auditID=f"00000000-0000-0000-0000-{i:06d}{copy:06d}")
            event["requestReceivedTimestamp"] = event["stageTimestamp"] = when
            lines.append(json.dumps(event))
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


@pytest.fixture
def both(
    tmp_path: Path, new_clickhouse_store: Callable[..., ClickHouseStore]
) -> tuple[DuckDBStore, ClickHouseStore, int]:
    events = tmp_path / "far.jsonl"
    total = _write_events(events)
    duck = open_store(tmp_path / "far.duckdb")
    house = new_clickhouse_store()
    for store in (duck, house):
        summary = ingest_paths(store, [str(events)], "far")
        assert summary.stored == total and summary.rejected == 0
    return duck, house, total


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        ("1900-01-01T00:00:00Z", "1975-01-01T00:00:00Z", 8),
        ("1950-01-01T00:00:00Z", "1970-01-01T00:00:00Z", 4),
        ("2100-01-01T00:00:00Z", "2299-01-01T00:00:00Z", 6),
        ("1900-01-01T00:00:00Z", "2299-01-01T00:00:00Z", 16),
    ],
)
def test_time_ranges_count_the_same_on_both_engines(
    both: tuple[DuckDBStore, ClickHouseStore, int], low: str, high: str, expected: int
) -> None:
    duck, house, _ = both
    text = f'time>="{low}" and time<"{high}" | stats count() as n'
    for store in (duck, house):
        assert run_query(store, text).table.column("n").to_pylist() == [expected]


def test_each_day_is_a_partition_of_its_own_date(
    both: tuple[DuckDBStore, ClickHouseStore, int],
) -> None:
    _, house, _ = both
    parts = house.query(
        "SELECT DISTINCT partition FROM system.parts "
        "WHERE database = {db:String} AND table = 'events' AND active",
        {"db": house.database},
    )
    assert sorted(parts.column(0).to_pylist()) == sorted({t[:10] for t in TIMES})


def test_migration_checks_every_day_across_the_range(
    both: tuple[DuckDBStore, ClickHouseStore, int],
    new_clickhouse_store: Callable[..., ClickHouseStore],
) -> None:
    duck, _, total = both
    report = migrate(duck, new_clickhouse_store())
    assert report.ok and report.stored == total and not report.missing


@pytest.mark.parametrize(
    "text",
    [
        "| timechart span=1h count()",
        "| timechart span=1d count() by verb",
        "| timechart span=30s count()",
    ],
)
@pytest.mark.parametrize("since", [None, "1950-06-01T00:00:00Z", "2150-01-01T00:00:00Z"])
def test_time_charts_bucket_the_same_on_both_engines(
    both: tuple[DuckDBStore, ClickHouseStore, int], text: str, since: str | None
) -> None:
    """Buckets stay ``DateTime64`` on ClickHouse (a ``SECOND`` interval gave a ``DateTime``,
    which put 1950 in 1970 and 2260 in 2106), also when the chart is counted from the
    per-minute projection (``since`` on a whole minute)."""
    duck, house, _ = both
    window = {"time_from": parse_instant(since)} if since else {}
    answers = [run_query(store, text, **window).rows() for store in (duck, house)]
    assert answers[0] == answers[1] and answers[0]
