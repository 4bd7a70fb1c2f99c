"""``kubetrail store init`` and ``kubetrail migrate``, through click's runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from kubetrail.cli.migrate import migrate
from kubetrail.cli.store import store as store_group
from kubetrail.pipeline import ingest_paths
from kubetrail.store import open_store
from kubetrail.store.clickhouse import ClickHouseStore
from testdata import EVENT_FILES

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")


def test_print_cluster_ddl() -> None:
    out = CliRunner().invoke(
        store_group,
        ["init", "--engine", "clickhouse", "--cluster", "prod", "--print", "--retention", "a=30"],
    )
    assert out.exit_code == 0, out.output
    ddl = out.output
    assert "CREATE DATABASE IF NOT EXISTS `kubetrail` ON CLUSTER `prod`" in ddl
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_local'" in ddl
    )
    assert (
        "ENGINE = Distributed(`prod`, `kubetrail`, events_local, cityHash64(cluster, audit_id))"
        in ddl
    )
    assert "PARTITION BY toDate32(request_received)" in ddl
    assert "ORDER BY (cluster, request_received, audit_id, stage)" in ddl
    assert "raw String CODEC(ZSTD(3))" in ddl and "TYPE bloom_filter" in ddl
    assert "verb LowCardinality(Nullable(String))" in ddl
    assert "toIntervalDay(30) DELETE WHERE cluster = 'a'" in ddl


def test_print_single_node_ddl_runs_on_the_server(clickhouse_url: str) -> None:
    out = CliRunner().invoke(store_group, ["init", "--print", "--database", "kt_printed"])
    assert out.exit_code == 0 and "ON CLUSTER" not in out.output
    client = ClickHouseStore(clickhouse_url, database="kt_tmp_runner")._client
    for statement in out.output.split(";\n"):
        if statement.strip():
            client.command(statement)
    store = ClickHouseStore(clickhouse_url, database="kt_printed", create=False)
    assert store.count() == 0
    client.command("DROP DATABASE kt_printed")
    client.command("DROP DATABASE kt_tmp_runner")


def test_init_creates_the_schema(clickhouse_url: str) -> None:
    args = ["init", "--url", clickhouse_url, "--database", "kt_init", "--retention", "*=400"]
    out = CliRunner().invoke(store_group, args)
    assert out.exit_code == 0, out.output
    store = ClickHouseStore(clickhouse_url, database="kt_init", create=False)
    ddl = store.query("SHOW CREATE TABLE events").column(0)[0].as_py()
    assert "TTL request_received + toIntervalDay(400)" in ddl
    store.query("DROP DATABASE kt_init")
    bad = CliRunner().invoke(store_group, ["init", "--retention", "dev"])
    assert bad.exit_code == 2


def test_migrate_moves_every_event(tmp_path: Path, clickhouse_url: str) -> None:
    path = tmp_path / "single.duckdb"
    db = open_store(path)
    ingest_paths(db, [str(p) for p in EVENT_FILES[:3]], "prod")
    ingest_paths(db, [str(p) for p in EVENT_FILES[3:]], "dev")
    total = db.count()
    db.close()
    parts = urlsplit(clickhouse_url)
    target = f"clickhouse://default@{parts.hostname}:{parts.port}/kt_migrated"
    runner = CliRunner()
    args = ["--from", f"duckdb:{path}", "--to", target, "--format", "json", "--batch-rows", "100"]
    out = runner.invoke(migrate, args)
    assert out.exit_code == 0, out.output
    report: dict[str, Any] = json.loads(out.output)
    assert report["ok"] and report["stored"] == report["copied"] == total
    assert report["source_count"] == report["target_count"] == total

    again = json.loads(runner.invoke(migrate, args).output)  # idempotent
    assert again["ok"] and again["stored"] == 0 and again["duplicates"] == total

    # A changed event and a lost event are both found.
    store = ClickHouseStore(clickhouse_url, database="kt_migrated")
    store._client.command(
        "ALTER TABLE events UPDATE raw = concat(raw, ' ') WHERE cluster = 'dev' "
        "AND audit_id = (SELECT min(audit_id) FROM events WHERE cluster = 'dev') "
        "SETTINGS mutations_sync = 1"
    )
    store._client.command(
        "DELETE FROM events WHERE cluster = 'prod' AND audit_id = "
        "(SELECT min(audit_id) FROM events WHERE cluster = 'prod')"
    )
    out = runner.invoke(migrate, [*args[:4], "--verify-only"])
    assert out.exit_code == 1
    assert "MISMATCH" in out.output and "missing in target: ('prod'" in out.output
    assert "differs: cluster dev" in out.output
    store.query("DROP DATABASE kt_migrated")
    store.close()


def test_migrate_usage_errors() -> None:
    out = CliRunner().invoke(migrate, ["--from", "sqlite:x", "--to", "clickhouse://h/db"])
    assert out.exit_code == 2 and "bad store" in out.output


def test_store_init_prints_the_alert_tables_for_a_cluster() -> None:
    out = CliRunner().invoke(store_group, ["init", "--cluster", "prod", "--print"])
    assert out.exit_code == 0, out.output
    assert "CREATE TABLE IF NOT EXISTS `kubetrail`.alerts ON CLUSTER `prod`" in out.output
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{database}/alert_deliveries', "
        "'{replica}', updated_at)" in out.output
    )
