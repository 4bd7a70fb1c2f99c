"""Deduplication exact by construction on one server: reads without FINAL count each event once.

A batch is inserted as one INSERT per partition (day), each with a token of its own content
(``kubetrail.store.clickhouse_pieces``), so a collector that sees some of a racing collector's
pieces stored inserts exactly the others, under the same tokens, and ClickHouse drops the copies.
The two-shard version of these races is in ``test_two_shards.py``.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest
from synthetic import START, events, race, rows_without_final

from kubetrail.errors import StoreError
from kubetrail.store.base import BatchMeta
from kubetrail.store.clickhouse import ClickHouseStore
from kubetrail.store.clickhouse_pieces import PIECE_SETTINGS, cut, token
from kubetrail.store.factory import StoreConfig, open_configured_store

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")


def active_parts(store: ClickHouseStore) -> int:
    found = store._client.query(
        "SELECT count() FROM system.parts WHERE database = {db:String} "
        "AND table = 'events' AND active",
        parameters={"db": store.database},
    )
    return int(found.result_rows[0][0])


def test_a_batch_is_one_part_per_day_each_with_its_own_token(new_clickhouse_store: Any) -> None:
    store = new_clickhouse_store()
    store._client.command(f"SYSTEM STOP MERGES {store.database}.events")
    table = events(2000, days=4)
    pieces = cut(table, target=f"{store.database}.events", cluster="c")
    days = Counter(t.date() for t in table.column("request_received").to_pylist())
    assert [p.table.num_rows for p in pieces] == [days[d] for d in sorted(days)]
    assert all(len(p.table.to_batches()) == 1 for p in pieces)  # one record batch: one block
    assert len({p.token for p in pieces}) == 5 and all(p.shard is None for p in pieces)
    assert store.write_batch(table, BatchMeta("c", "s", "b1")).stored == 2000
    assert active_parts(store) == 5  # one part per piece
    # The same rows cut otherwise (another order, other chunks) make the same pieces and tokens.
    shuffled = table.take(pa.array(random.Random(1).sample(range(2000), 2000)))
    again = cut(
        pa.Table.from_batches(shuffled.to_batches(max_chunksize=77)),
        target=f"{store.database}.events",
        cluster="c",
    )
    assert [p.token for p in again] == [p.token for p in pieces]
    for piece in again:  # inserted behind the check's back: ClickHouse drops every block
        store._insert_piece(piece)
    assert rows_without_final(store) == store.count() == 2000
    # The token depends on the table too.
    assert token("other.events", "c", pieces[0].table) != pieces[0].token


def test_squashing_settings_cannot_merge_or_split_a_piece(new_clickhouse_store: Any) -> None:
    """A profile's block sizes do not change a piece's block: it is one record batch, unsquashed."""
    store = new_clickhouse_store()
    store._client.command(f"SYSTEM STOP MERGES {store.database}.events")
    piece = cut(events(3000, days=1), target=f"{store.database}.events", cluster="c")[1]
    settings = piece.settings()
    assert {k: settings[k] for k in PIECE_SETTINGS} == PIECE_SETTINGS
    odd = {"max_insert_block_size": 100, "min_insert_block_size_rows": 100}
    store._client.insert_arrow(
        "events", piece.table, database=store.database, settings={**settings, **odd}
    )
    assert active_parts(store) == 1
    store._insert_piece(piece)
    assert rows_without_final(store) == piece.table.num_rows


def test_partially_visible_batch(new_clickhouse_store: Any) -> None:
    """Collector B checks while only the first of A's pieces is visible (the race of FINAL's days).

    The interleaving is forced step by step: A checks (nothing stored) and cuts its pieces;
    A's first piece lands; B writes the whole batch (it sees that piece and inserts the rest);
    A's other pieces land. Without FINAL every event counts once.
    """
    a = new_clickhouse_store()
    b = new_clickhouse_store(database=a.database)
    table = events(1200, days=3)
    mine = a._without_stored(table, "c", START, START + timedelta(days=3))
    pieces = a._cut(mine, "c")
    assert len(pieces) == 4
    a._insert_piece(pieces[0])
    written = b.write_batch(table, BatchMeta("c", "webhook", "b-retry"))
    seen = pieces[0].table.num_rows
    assert (written.stored, written.duplicates) == (1200 - seen, seen)
    for piece in pieces[1:]:
        a._insert_piece(piece)
    assert rows_without_final(a) == a.count() == 1200

    # What one token for the rest of the batch did: B's INSERT of the three other days got
    # another token than A's INSERT of the whole batch, and every row of those days was twice.
    old = new_clickhouse_store()
    whole = a._cut(table, "c")
    old._client.insert_arrow(
        "events", table, database=old.database, settings={"insert_deduplication_token": "whole"}
    )
    rest = pa.concat_tables([p.table for p in whole[1:]])
    old._client.insert_arrow(
        "events", rest, database=old.database, settings={"insert_deduplication_token": "rest"}
    )
    assert rows_without_final(old) == 1200 + rest.num_rows


@pytest.mark.slow
def test_collectors_racing_on_retried_batches(new_clickhouse_store: Any) -> None:
    """Four collectors write the same retried batches at once, with jitter so that their checks
    fall before, between and after each other's pieces; none counts twice without FINAL."""
    first = new_clickhouse_store()
    collectors = [first] + [new_clickhouse_store(database=first.database) for _ in range(3)]
    batches = [events(900, first=900 * k, days=5, cluster=f"c{k % 2}") for k in range(8)]
    race(collectors, batches)
    assert rows_without_final(first) == first.count() == 8 * 900
    by_cluster = first.query("SELECT cluster, count() AS n FROM events GROUP BY cluster ORDER BY 1")
    assert by_cluster.to_pylist() == [{"cluster": "c0", "n": 3600}, {"cluster": "c1", "n": 3600}]


def test_exact_reads_is_off_by_default_and_stays_a_setting(clickhouse_url: str) -> None:
    """``store.exact_reads: true`` (a DBA's choice) puts FINAL back on every read."""
    section = {"engine": "clickhouse", "url": clickhouse_url, "database": "kt_exact_reads"}
    plain = open_configured_store(StoreConfig.from_mapping(section))
    exact = open_configured_store(StoreConfig.from_mapping({**section, "exact_reads": True}))
    try:
        assert isinstance(plain, ClickHouseStore) and isinstance(exact, ClickHouseStore)
        assert plain.read_settings == {"final": 0}
        assert exact.read_settings["final"] == 1
    finally:
        plain.command("DROP DATABASE IF EXISTS kt_exact_reads")
        plain.close()
        exact.close()


def test_unknown_cluster_is_a_clear_error_at_the_first_write(
    new_clickhouse_store: Any, clickhouse_url: str
) -> None:
    single = new_clickhouse_store()
    wrong = ClickHouseStore(clickhouse_url, database=single.database, cluster="nope", create=False)
    try:
        assert wrong.count() == 0  # reads need no shards
        with pytest.raises(StoreError, match=r"no cluster 'nope' in system\.clusters"):
            wrong.write_batch(events(10), BatchMeta("c", "s", "b1"))
        assert single.count() == 0  # nothing written
    finally:
        wrong.close()


def test_what_still_leaves_a_copy_two_differently_cut_batches(new_clickhouse_store: Any) -> None:
    """The documented remaining case: the same events in two *different* batches whose checks
    both ran before either INSERT. Their pieces differ, so do their tokens: the shared events
    are stored twice until a merge; ``exact_reads`` never counts them."""
    a = new_clickhouse_store()
    b = new_clickhouse_store(database=a.database, exact_reads=True)
    every = events(1000, days=1)
    x, y = every.slice(0, 600), every.slice(400, 600)  # 200 events in both
    span = (START, START + timedelta(days=2))
    new_x, new_y = a._without_stored(x, "c", *span), b._without_stored(y, "c", *span)
    a._insert_pieces(a._cut(new_x, "c"))
    b._insert_pieces(b._cut(new_y, "c"))
    assert rows_without_final(a) == a.count() == 1200  # 1,000 events, 200 of them twice
    assert b.count() == 1000
    a.optimize()
    assert rows_without_final(a) == a.count() == 1000
