"""The multi-node path: two ClickHouse servers as the two shards of a ``Distributed`` table.

What is tested here: the DDL of ``kubetrail store init --cluster`` (run node by node), sharding
by ``cityHash64(cluster, audit_id)`` (the collectors' pieces go where ``Distributed`` would put
them, also with shard weights), writes from collectors attached to different nodes,
deduplication across them exact without FINAL (racing and partially visible batches), and the
whole query language through the Distributed table, with answers identical to the embedded
store's (newest-first listings reading each shard's ``by_time`` projection backwards). What is
not: replication and ``ON CLUSTER``. The chdb-based test server connects to a ZooKeeper, but
its replicated tables stay read-only and it refuses ``ON CLUSTER`` (clickhouse-local has no
interserver endpoint and no DDL worker; the errors are in docs/scale-out.md), so the Replicated
engines are swapped for their plain forms and each statement runs on each node.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from synthetic import START, events, race, rows_without_final

from clickhouse_server import ClickHouseServer, free_port
from kubetrail.pipeline import ingest_paths
from kubetrail.query import run_query
from kubetrail.store import open_store
from kubetrail.store.base import BatchMeta
from kubetrail.store.clickhouse import ClickHouseStore
from kubetrail.store.clickhouse_schema import schema_ddl
from testdata import EVENT_FILES

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")

QUERIES = [
    "| stats count() by verb",
    "code>=400 | stats count(), dc(user) by user | sort -count, user",
    "| timechart span=1h count() by verb",
    "stage=* | stats count() by stage",
    "requestObject.spec.containers[*].securityContext.privileged=true | fields id | sort id",
]


#: Newest-first listings (``ORDER BY request_received DESC LIMIT n``), compared as multisets.
LISTINGS = [
    'uri:"/api/v1/namespaces" | fields time, user, verb, uri',
    "verb=get",
    "code>=400 | fields time, cluster, user, code",
]


def _local(statement: str) -> str:
    """The statement for one node without Keeper: no ON CLUSTER, no replication."""
    statement = re.sub(r" ON CLUSTER `\w+`", "", statement)
    statement = re.sub(r"Replicated(\w*MergeTree)\('[^']*', '\{replica\}'\)", r"\1", statement)
    return statement.replace(
        "replicated_deduplication_window", "non_replicated_deduplication_window"
    )


def _create(servers: list[ClickHouseServer], database: str, cluster: str = "kt") -> None:
    """kubetrail's cluster schema on every node, statement by statement."""
    for server in servers:
        setup = ClickHouseStore(server.url, database="kt_setup")
        for statement in schema_ddl(database, cluster=cluster):
            setup._client.command(_local(statement))
        setup.close()


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ClickHouseServer]]:
    ports = [(free_port(), free_port()) for _ in range(2)]

    def shard(tcp: int, weight: int) -> str:
        replica = f"<replica><host>127.0.0.1</host><port>{tcp}</port></replica>"
        return f"<shard><weight>{weight}</weight>{replica}</shard>"

    equal = "".join(shard(tcp, 1) for _, tcp in ports)
    weighted = "".join(shard(tcp, w) for (_, tcp), w in zip(ports, (1, 3), strict=True))
    clusters = f"<remote_servers><kt>{equal}</kt><kt_w>{weighted}</kt_w></remote_servers>\n"
    servers = [
        ClickHouseServer(
            tmp_path_factory.mktemp(f"shard{i}"),
            extra_config=clusters,
            http_port=http,
            tcp_port=tcp,
        )
        for i, (http, tcp) in enumerate(ports)
    ]
    try:
        for server in servers:
            server.start()
        _create(servers, "kt_dist")
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_distributed_store_answers_like_the_embedded_one(shards: list[ClickHouseServer]) -> None:
    collectors = [
        ClickHouseStore(s.url, database="kt_dist", cluster="kt", create=False) for s in shards
    ]
    files = [str(p) for p in EVENT_FILES]
    start = threading.Barrier(2)

    def collect(store: ClickHouseStore) -> None:  # both receive every event
        start.wait()
        ingest_paths(store, files, "default")

    threads = [threading.Thread(target=collect, args=(c,)) for c in collectors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    embedded = open_store(":memory:")
    ingest_paths(embedded, files, "default")
    for store in collectors:
        # Without FINAL (the default reads): the file-ingest race once left 816 rows for 810.
        assert rows_without_final(store) == store.count() == embedded.count()
        for text in QUERIES:
            assert run_query(store, text).rows() == run_query(embedded, text).rows(), text
        for text in LISTINGS:  # newest first: each shard reads its by_time backwards
            ours, theirs = (run_query(db, text, limit=100_000) for db in (store, embedded))
            assert Counter(map(repr, ours.rows())) == Counter(map(repr, theirs.rows())), text
            assert ours.rows() and ours.compiled.sql.endswith("DESC LIMIT 100000")
    # Through the Distributed table: this node's shard reads its by_time backwards, the other
    # shard is asked for its own newest rows, and the two sorted streams are merged.
    listing = run_query(collectors[0], LISTINGS[0], limit=100_000).compiled.sql
    explain = collectors[0]._client.query(f"EXPLAIN actions = 1 {listing}").result_rows
    plan = [str(row[0]).strip() for row in explain]
    local = next(i for i, line in enumerate(plan) if line.endswith("ReadFromMergeTree (by_time)"))
    assert plan[local + 1].endswith("Read type: InReverseOrder")
    assert any(line.endswith("ReadFromRemote (Read from remote replica)") for line in plan)
    # Each shard holds a part of the events: rows are spread, not copied.
    local = [rows_without_final(c, "events_local") for c in collectors]
    assert all(local) and sum(local) == embedded.count()
    for store in collectors:
        store.close()
    embedded.close()


def _local_rows(servers: list[ClickHouseServer], database: str) -> list[int]:
    """Rows of ``events_local`` on each node, as stored (every copy counts)."""
    counts = []
    for server in servers:
        node = ClickHouseStore(server.url, database=database, create=False)
        counts.append(rows_without_final(node, "events_local"))
        node.close()
    return counts


def test_pieces_go_to_the_shard_distributed_picks(shards: list[ClickHouseServer]) -> None:
    """Weights 1 and 3: slot 0 is shard 1, slots 1-3 shard 2, as Distributed maps them."""
    _create(shards, "kt_weights", cluster="kt_w")
    store = ClickHouseStore(shards[0].url, database="kt_weights", cluster="kt_w", create=False)
    shard_map = store._shard_map()
    assert shard_map is not None and shard_map.slots == (1, 2, 2, 2)
    table = events(2000, days=2)
    # Distributed routes the rows by its own sharding; the pieces carry the shard we computed.
    store._client.insert_arrow(
        "events", table, database="kt_weights", settings={"distributed_foreground_insert": 1}
    )
    pieces = store._cut(table, "c")
    by_shard: dict[int, set[str]] = {}
    for piece in pieces:
        assert piece.shard is not None
        by_shard.setdefault(piece.shard, set()).update(piece.table.column("audit_id").to_pylist())
    for number, server in enumerate(shards, start=1):
        node = ClickHouseStore(server.url, database="kt_weights", create=False)
        routed = node.query("SELECT audit_id FROM events_local").column(0).to_pylist()
        node.close()
        assert set(routed) == by_shard[number]
    assert len(by_shard[2]) > 2 * len(by_shard[1])  # three slots of four: about 3/4 of the ids
    # Written by the store: one copy, on the same shards.
    for server in shards:
        node = ClickHouseStore(server.url, database="kt_weights", create=False)
        node._client.command("TRUNCATE TABLE events_local")
        node.close()
    store.write_batch(table, BatchMeta("c", "s", "b1"))
    assert _local_rows(shards, "kt_weights") == [len(by_shard[1]), len(by_shard[2])]
    store.close()


def test_partially_visible_batch_on_two_shards(shards: list[ClickHouseServer]) -> None:
    """B writes the batch when only A's pieces for shard 1 are stored; A then sends the rest."""
    _create(shards, "kt_partial")
    a, b = (
        ClickHouseStore(s.url, database="kt_partial", cluster="kt", create=False) for s in shards
    )
    table = events(1500, days=2)
    pieces = a._cut(a._without_stored(table, "c", START, START + timedelta(days=2)), "c")
    assert {p.shard for p in pieces} == {1, 2} and len(pieces) == 6  # 3 days x 2 shards
    first = [p for p in pieces if p.shard == 1]
    for piece in first:
        a._insert_piece(piece)
    written = b.write_batch(table, BatchMeta("c", "webhook", "retry"))
    assert written.duplicates == sum(p.table.num_rows for p in first)
    for piece in pieces:
        if piece.shard == 2:
            a._insert_piece(piece)
    assert sum(_local_rows(shards, "kt_partial")) == 1500
    assert rows_without_final(a) == rows_without_final(b) == a.count() == 1500
    a.close()
    b.close()


@pytest.mark.slow
def test_collectors_racing_on_two_shards(shards: list[ClickHouseServer]) -> None:
    """Four collectors, two per node, write the same retried batches (each over two days and
    both shards) at once: without FINAL, each event is one row on one shard.

    With one INSERT per batch (and one token), this race left 164 copies in 9,000 events
    (30 such batches); 816 rows for 810 events in the file-ingest race above."""
    _create(shards, "kt_race")
    collectors = [
        ClickHouseStore(s.url, database="kt_race", cluster="kt", create=False)
        for s in (*shards, *shards)
    ]
    batches = [events(300, first=300 * k, days=1, cluster=f"c{k % 2}") for k in range(24)]
    race(collectors, batches, jitter=0.03)
    local = _local_rows(shards, "kt_race")
    assert all(local) and sum(local) == 24 * 300
    for store in collectors:
        assert rows_without_final(store) == store.count() == 24 * 300
        store.close()
