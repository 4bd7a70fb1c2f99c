"""The ``by_minute`` projection: counts per cluster, ``is_final``, verb and minute
(``clickhouse_schema.MINUTE_PROJECTION``), and the compiler's rewrite that lets time charts
read it (``query/dialects/rollup.py``).

Locks in that it exists, which questions read it (the plan is deterministic; the speed is
measured in ``bench/clickhouse_bench.py``) and which do not, that answers are the same as the
embedded store's, without it and under FINAL, and that merges dropping copies, retention's
DELETE and the migration of docs/scale-out.md keep it exact.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from synthetic import add_projection_as_documented, counts_around_a_merge, plan, read_settings

from kubetrail.cli.store import store as store_group
from kubetrail.query import compile_query, run_query
from kubetrail.query.dialects import ClickHouse
from kubetrail.store.clickhouse_schema import MINUTE_PROJECTION

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")

NO_PROJECTION = {"optimize_use_projections": 0}
#: The start of the events of ``fill``, and a whole minute inside them.
START = datetime(2026, 1, 1)
ON_A_MINUTE = START + timedelta(hours=1, minutes=7)
OFF_A_MINUTE = ON_A_MINUTE + timedelta(seconds=29, microseconds=5)
#: Counts from the projection's own rows, whatever ClickHouse would choose for a query.
PROJECTION_COUNTS = (
    "SELECT cluster, countMerge(`count()`) FROM mergeTreeProjection(currentDatabase(), events, "
    "by_minute) GROUP BY cluster ORDER BY cluster"
)
TABLE_COUNTS = "SELECT cluster, count() FROM events GROUP BY cluster ORDER BY cluster"
#: Questions it answers: (query text, compile_query keyword arguments).
READ_IT: list[tuple[str, dict[str, Any]]] = [
    ("| timechart span=5m count() by verb", {}),
    ("| timechart span=15m count() by verb", {"time_from": ON_A_MINUTE, "cluster": "a"}),
    ("| timechart span=1h count()", {"time_from": ON_A_MINUTE, "time_to": START + timedelta(1)}),
    ("| timechart span=1m count() by verb", {"cluster": ["a", "b"]}),
    ("verb=get | timechart span=1d count()", {"time_to": ON_A_MINUTE}),
    ("| stats count() by verb", {}),
    ("| stats count()", {"time_from": ON_A_MINUTE}),
    ("| top verb", {"time_from": ON_A_MINUTE}),
    (f'time>="{ON_A_MINUTE.isoformat()}Z" | timechart span=2h count() by verb', {}),
]
#: Questions it cannot answer exactly; they compile as before and read something else.
NOT_IT: list[tuple[str, dict[str, Any]]] = [
    ("| timechart span=15m count() by verb", {"time_from": OFF_A_MINUTE}),
    ("| timechart span=30s count() by verb", {}),
    ("| timechart span=5m count() by user", {}),
    ("| timechart span=5m dc(user) by verb", {}),
    ("| stats count(), max(time) by verb", {}),
    (f'time>"{ON_A_MINUTE.isoformat()}Z" | stats count() by verb', {}),
    ("verb=get", {"time_from": ON_A_MINUTE}),
    ("| top user", {"time_from": ON_A_MINUTE}),
    ("stage=* | stats count() by verb", {}),  # every stage: a filter on stage
]


#: Four rows a second across 1950-06-01 00:00 and across 2260-07-04 10:00 (cluster 'a').
FAR_ROWS = (
    "INSERT INTO events (cluster, audit_id, stage, is_final, verb, request_received, raw) "
    "SELECT 'a', concat('far', toString(number)), 'ResponseComplete', true, 'get', "
    "if(number < 16, toDateTime64('1950-06-01 00:00:00', 6, 'UTC'), "
    "toDateTime64('2260-07-04 10:00:00', 6, 'UTC')) "
    "+ toIntervalMillisecond(toInt64(number % 16) * 250 - 2000), '{}' FROM numbers(32)"
)
FAR = [datetime(1950, 6, 1), datetime(2260, 7, 4, 10)]
#: Bounds at and next to whole minutes, far from now and in ``fill``'s hours.
EDGES: list[tuple[str, dict[str, Any]]] = [
    *(("| stats count() by verb", {"time_from": when}) for when in FAR),
    *(("| stats count() by verb", {"time_to": when}) for when in FAR),
    *(
        ("| timechart span=1m count() by verb", {"time_from": when - timedelta(minutes=1)})
        for when in FAR
    ),
    ("| stats count()", {"time_from": FAR[0] + timedelta(microseconds=1)}),
    (f'time<="{ON_A_MINUTE.isoformat()}Z" | stats count() by verb', {}),
    (f'time>"{ON_A_MINUTE.isoformat()}Z" | timechart span=5m count()', {}),
    ("| timechart span=1h count() by verb", {"time_to": OFF_A_MINUTE}),
]


def _fill(store: Any) -> None:
    """One INSERT made by the server: a request every 0.25 s over six hours in clusters 'a'
    and 'b', two stages each (the second final), the verb cycling through five."""
    store._client.command(
        "INSERT INTO events (cluster, audit_id, stage, is_final, verb, username, "
        "request_received, raw) SELECT if(intDiv(number, 2) % 3 = 0, 'b', 'a'), "
        "toString(intDiv(number, 2)), "
        "if(number % 2 = 0, 'RequestReceived', 'ResponseComplete'), number % 2 = 1, "
        "['get', 'list', 'watch', 'create', 'delete'][intDiv(number, 2) % 5 + 1], "
        "concat('u', toString(intDiv(number, 2) % 7)), "
        "toDateTime64('2026-01-01 00:00:00', 6, 'UTC') + "
        "toIntervalMicrosecond(intDiv(number, 2) * 250001), '{}' FROM numbers(172800)"
    )


def _reads_it(store: Any, sql: str) -> bool:
    return any(line.endswith("ReadFromMergeTree (by_minute)") for line in plan(store, sql))


@pytest.fixture
def filled(new_clickhouse_store: Any) -> Any:
    store = new_clickhouse_store()
    _fill(store)
    store.optimize()  # one part per day: the plan does not depend on merges
    return store


def test_store_init_prints_it_for_a_dba() -> None:
    for extra in ([], ["--cluster", "prod"]):
        out = CliRunner().invoke(store_group, ["init", "--engine", "clickhouse", "--print", *extra])
        assert out.exit_code == 0, out.output
        assert MINUTE_PROJECTION in out.output


@pytest.mark.parametrize(("text", "scope"), READ_IT)
def test_counts_over_time_read_it(filled: Any, text: str, scope: dict[str, Any]) -> None:
    sql = compile_query(text, "clickhouse", **scope).sql
    assert _reads_it(filled, sql), sql
    with read_settings(filled, {"final": 0}):
        ours = run_query(filled, text, **scope).rows()
    with read_settings(filled, {"final": 0, **NO_PROJECTION}):
        assert ours == run_query(filled, text, **scope).rows() and ours


@pytest.mark.parametrize(("text", "scope"), NOT_IT)
def test_other_questions_do_not(filled: Any, text: str, scope: dict[str, Any]) -> None:
    compiled = compile_query(text, "clickhouse", **scope).sql
    assert not _reads_it(filled, compiled), compiled


def test_the_rewrite_never_changes_an_answer(filled: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every question, rewritten and as written, on events every 0.25 s and at the edges of
    whole minutes before 1970 and after 2106 (where a ``DateTime`` would clamp)."""
    filled._client.command(FAR_ROWS)
    questions = [*READ_IT, *NOT_IT, *EDGES]
    rewritten = [compile_query(text, "clickhouse", **scope).sql for text, scope in questions]
    with monkeypatch.context() as patch:
        patch.setattr(ClickHouse, "finish", lambda self, select: select)
        written = [compile_query(text, "clickhouse", **scope).sql for text, scope in questions]
    assert sum(a != b for a, b in zip(rewritten, written, strict=True)) >= len(READ_IT)
    for (text, scope), ours, theirs in zip(questions, rewritten, written, strict=True):
        expected = filled.query(theirs).to_pylist()
        assert filled.query(ours).to_pylist() == expected, (text, scope)


def test_answers_are_the_embedded_stores(store: Any, duckdb_store: Any) -> None:
    times = run_query(duckdb_store, "stage=* | stats min(time), max(time)").rows()[0]
    middle = (times[0] + (times[1] - times[0]) / 2).replace(second=0, microsecond=0)
    windows: list[dict[str, Any]] = [
        {},
        {"time_from": middle},
        {"time_to": middle},
        {"time_from": middle - timedelta(days=400), "time_to": middle, "cluster": "default"},
        {"time_from": middle + timedelta(seconds=1)},
    ]
    for text in (
        "| timechart span=1h count() by verb",
        "| timechart span=1d count()",
        "| stats count() by verb",
        "| top verb 3",
    ):
        for window in windows:
            expected = run_query(duckdb_store, text, **window).rows()
            for settings in ({"final": 0}, {"final": 0, **NO_PROJECTION}, {"final": 1}):
                with read_settings(store, settings):
                    assert run_query(store, text, **window).rows() == expected, (text, window)


def test_merges_that_drop_copies_keep_it_exact(new_clickhouse_store: Any) -> None:
    before, after = counts_around_a_merge(new_clickhouse_store(), PROJECTION_COUNTS)
    assert before == [("dev", 2), ("prod", 2)] and after == [("dev", 1), ("prod", 1)]


def test_retention_deletes_from_it_too(filled: Any) -> None:
    text, window = "| timechart span=15m count() by verb", {"cluster": "a"}
    cutoff = START + timedelta(hours=2, minutes=30)
    kept = [row for row in run_query(filled, text, **window).rows() if row[0] >= cutoff]
    assert filled.delete_older_than(cutoff) > 0
    # The DELETE dropped the projection of the part it changed: it is read from the table.
    assert run_query(filled, text, **window).rows() == kept
    filled.optimize()  # a merge rewrites the part, with its projection
    assert _reads_it(filled, compile_query(text, "clickhouse", **window).sql)
    assert run_query(filled, text, **window).rows() == kept
    left = filled._client.query(TABLE_COUNTS).result_rows
    assert filled._client.query(PROJECTION_COUNTS).result_rows == left


def test_the_migration_adds_it_to_an_older_store(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    _fill(store)
    store._client.command("ALTER TABLE events DROP PROJECTION by_minute")  # as stores made before
    store.optimize()
    text = "| timechart span=5m count() by verb"
    sql = compile_query(text, "clickhouse").sql
    before = run_query(store, text).rows()
    assert not _reads_it(store, sql)
    add_projection_as_documented(store, MINUTE_PROJECTION, "by_minute")
    assert _reads_it(store, sql)
    assert run_query(store, text).rows() == before
    left = store._client.query(TABLE_COUNTS).result_rows
    assert store._client.query(PROJECTION_COUNTS).result_rows == left
