"""The store section of the configuration and the store URLs of the CLI (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kubetrail.cli.store import store
from kubetrail.errors import ConfigError
from kubetrail.store.clickhouse_schema import schema_ddl, ttl_clause
from kubetrail.store.factory import StoreConfig, open_configured_store, parse_store_url


def test_parse_store_url() -> None:
    config = parse_store_url("clickhouse://u:p%40ss@ch.example:9000/audit?cluster=main")
    assert config == StoreConfig(
        engine="clickhouse",
        url="http://ch.example:9000",
        database="audit",
        cluster="main",
        username="u",
        password="p@ss",
    )
    assert parse_store_url("clickhouses://ch/").url == "https://ch:8123"
    assert parse_store_url("clickhouse:http://localhost:8123").database == "kubetrail"
    assert parse_store_url("duckdb:/var/lib/k.duckdb") == StoreConfig(path="/var/lib/k.duckdb")
    with pytest.raises(ConfigError):
        parse_store_url("clickhouse:")


def test_store_config_from_mapping() -> None:
    config = StoreConfig.from_mapping(
        {"engine": "clickhouse", "url": "http://c:8123", "cluster": "x"}
    )
    assert config.cluster == "x"
    with pytest.raises(ConfigError, match="did you mean 'database'"):
        StoreConfig.from_mapping({"engine": "clickhouse", "url": "u", "databse": "d"})
    with pytest.raises(ConfigError, match="not one of"):
        StoreConfig(engine="postgres")
    with pytest.raises(ConfigError, match="url is required"):
        StoreConfig(engine="clickhouse")


def test_retention_rules() -> None:
    assert ttl_clause({}) == ""
    rules = ttl_clause({"prod": 400, "*": 30})
    assert "toIntervalDay(400) DELETE WHERE cluster = 'prod'" in rules
    assert "toIntervalDay(30) DELETE WHERE cluster != 'prod'" in rules
    assert "cluster = 'it\\'s'" in ttl_clause({"it's": 1})
    with pytest.raises(ConfigError):
        ttl_clause({"prod": 0})


def test_single_node_ddl_has_no_cluster_parts() -> None:
    ddl = "\n".join(schema_ddl("kt"))
    assert "ON CLUSTER" not in ddl and "Distributed" not in ddl and "Replicated" not in ddl
    assert "ENGINE = ReplacingMergeTree" in ddl and "non_replicated_deduplication_window" in ddl


def test_init_embedded_store(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    out = CliRunner().invoke(store, ["init", "--engine", "duckdb", "--db", str(path)])
    assert out.exit_code == 0 and path.exists()
    out = CliRunner().invoke(store, ["init", "--engine", "duckdb", "--print"])
    assert out.exit_code == 2


def test_open_configured_duckdb(tmp_path: Path) -> None:
    db = open_configured_store(StoreConfig(path=str(tmp_path / "x.duckdb")))
    assert db.dialect == "duckdb" and db.count() == 0
    db.close()


def test_positional_parameters_bind_in_the_order_of_the_text() -> None:
    """``a = ? AND b = ? AND c IN (?, ?)``: each ``?`` takes the value at its own place."""
    from kubetrail.store.clickhouse_arrow import bind_positional

    sql, params = bind_positional(
        "SELECT 1 FROM t WHERE a = ? AND b = ? AND (c IN (?, ?) OR d < ?)", ["A", "B", "C", "D", 5]
    )
    order = [sql.index("{" + name + ":") for name in ("p0", "p1", "p2", "p3", "p4")]
    assert order == sorted(order)
    assert params == {"p0": "A", "p1": "B", "p2": "C", "p3": "D", "p4": 5}
