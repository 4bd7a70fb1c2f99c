"""``environment`` in rule filters, alerts that record their environment, and the
``kubetrail alerts --environment`` filter (issue 9)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from kubetrail.cli import main
from kubetrail.config import ClusterConfig, ServerConfig
from kubetrail.detect.alertstore import list_alerts, record_alert
from kubetrail.detect.detector import Detector
from kubetrail.detect.engine import BatchEngine
from kubetrail.detect.environments import (
    cluster_environments,
    environment_clusters,
    expand_environments,
)
from kubetrail.detect.loader import load_ruleset
from kubetrail.detect.rules import parse_rule
from kubetrail.errors import RuleError
from kubetrail.model.normalize import normalize_records
from kubetrail.store import DuckDBStore, open_store

ENVS = {"production": ["prod-eu", "prod-us"], "development": ["dev"], "dev-sandbox": ["sbx"]}
DATA = Path(__file__).parents[1] / "data" / "events" / "audit2rbac-demo-v1.jsonl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("environment=production", 'cluster in ("prod-eu", "prod-us")'),
        ("env=dev* verb=get", 'cluster in ("dev", "sbx") verb=get'),
        ('environment:"PRODUCTION"', 'cluster in ("prod-eu", "prod-us")'),
        ("environment!=production", '(not cluster in ("prod-eu", "prod-us"))'),
        ("environment in (development, production)", 'cluster in ("dev", "prod-eu", "prod-us")'),
        ("environment not in (production)", '(not cluster in ("prod-eu", "prod-us"))'),
        ('uri="environment=production" or verb=list', 'uri="environment=production" or verb=list'),
    ],
)
def test_environment_terms_become_cluster_terms(text: str, expected: str) -> None:
    assert expand_environments(text, ENVS, "rule") == expected


def test_unknown_environments_and_operators() -> None:
    with pytest.raises(RuleError, match="did you mean 'production'"):
        expand_environments("environment=prodution", ENVS, "r.yaml: rule x: when")
    with pytest.raises(RuleError, match="use environment=NAME"):
        expand_environments("environment>production", ENVS, "rule")
    # Without a configuration the term matches no cluster (a rule file stays valid anywhere).
    assert expand_environments("environment=production", None, "rule") == 'cluster in ("")'


def test_maps_of_the_configuration() -> None:
    server = ServerConfig(
        clusters=[
            ClusterConfig(name="prod-us", environment="production"),
            ClusterConfig(name="prod-eu", environment="production"),
            ClusterConfig(name="lab"),
        ]
    )
    assert environment_clusters(server) == {"production": ["prod-eu", "prod-us"]}
    assert cluster_environments(server) == {"prod-us": "production", "prod-eu": "production"}


def test_the_pack_stays_valid_with_environments() -> None:
    assert len(load_ruleset(environments=ENVS).rules) == len(load_ruleset().rules)


def _batch(cluster: str):
    records = list(enumerate(DATA.read_bytes().splitlines(), start=1))
    batch = normalize_records(records, cluster=cluster, source="t", batch_id=cluster)
    return batch.table


def test_a_rule_on_one_environment_fires_there_only_and_alerts_record_it(
    store: DuckDBStore,
) -> None:
    rule = parse_rule(
        {
            "id": "test.prod_reads",
            "title": "Reads in production",
            "severity": "low",
            "when": "environment=production verb in (get, list)",
            "except": ["environment=production user=nobody"],
            "output": "{user} read {resource}",
        },
        "test.yaml",
        {},
        environments=ENVS,
    )
    engine = BatchEngine([rule])
    try:
        assert engine.scan(_batch("dev")) == []
        assert {m.cluster for m in engine.scan(_batch("prod-eu"))} == {"prod-eu"}
    finally:
        engine.close()
    detector = Detector(store, [rule], environments={"prod-eu": "production", "dev": "development"})
    try:
        raised = detector.on_batch(_batch("prod-eu")) + detector.on_batch(_batch("dev"))
    finally:
        detector.close()
    assert raised and {a.environment for a in raised} == {"production"}
    assert {a.environment for a in list_alerts(store, environment="production")} == {"production"}
    assert list_alerts(store, environment="development") == []
    assert list_alerts(store, cluster=["dev", "prod-eu"])  # an environment's clusters


def test_an_alerts_table_from_before_environments_gets_the_column(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    with open_store(db) as store:
        store.query(
            "CREATE TABLE alerts (id VARCHAR PRIMARY KEY, rule VARCHAR NOT NULL, "
            "title VARCHAR NOT NULL, severity VARCHAR NOT NULL, tags VARCHAR[] NOT NULL, "
            "cluster VARCHAR NOT NULL, key VARCHAR NOT NULL, message VARCHAR NOT NULL, "
            "status VARCHAR NOT NULL, first_seen TIMESTAMP NOT NULL, last_seen TIMESTAMP NOT NULL, "
            "count BIGINT NOT NULL, audit_ids VARCHAR[] NOT NULL, acknowledged_by VARCHAR, "
            "resolved_by VARCHAR, updated_at TIMESTAMP NOT NULL)"
        )
        store.query(
            "INSERT INTO alerts VALUES ('old', 'r.old', 't', 'low', [], 'dev', 'k', 'm', 'open', "
            "TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-01', 1, [], NULL, NULL, now())"
        )
    with open_store(db) as store:
        (old,) = list_alerts(store)
        assert old.environment == "" and old.to_json()["environment"] == ""
        record_alert(
            store,
            rule="r.new",
            title="t",
            severity="high",
            cluster="prod-eu",
            key="k",
            message="m",
            time=datetime(2026, 2, 1),
            audit_ids=["a"],
            environment="production",
        )
    result = CliRunner().invoke(
        main, ["alerts", "--db", str(db), "--environment", "production", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    (line,) = result.output.splitlines()
    assert json.loads(line)["rule"] == "r.new" and json.loads(line)["environment"] == "production"
    table = CliRunner().invoke(main, ["alerts", "--db", str(db), "--env", "production"])
    assert "production" in table.output and "r.old" not in table.output
