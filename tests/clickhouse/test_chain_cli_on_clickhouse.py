"""``kubetrail verify`` (with signed digests) and ``retention apply`` on a ClickHouse URL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("chdb", reason="chdb-core (a test dependency) runs the ClickHouse server")

from click.testing import CliRunner

from kubetrail.cli import main
from kubetrail.pipeline import ingest_paths
from kubetrail.store.clickhouse import ClickHouseStore
from kubetrail.store.clickhouse_chain import read_records
from trail import PER_DAY, START, day_file


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def filled(new_clickhouse_store: Any, tmp_path: Path) -> tuple[ClickHouseStore, str]:
    """Four days of ``prod`` and ``dev`` written by two collectors; the store and its URL."""
    a = new_clickhouse_store()
    b = new_clickhouse_store(database=a.database)
    for day in range(4):
        for cluster in ("prod", "dev"):
            path = day_file(tmp_path / "in", cluster, START + timedelta(days=day))
            ingest_paths(a if day % 2 else b, [str(path)], cluster)
    url = a.url.replace("http://", "clickhouse://") + f"/{a.database}"
    return a, url


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in").mkdir()
    monkeypatch.chdir(tmp_path)  # the default signing key is written to the working directory


def test_verify_export_and_a_truncated_chain(
    filled: tuple[ClickHouseStore, str], tmp_path: Path
) -> None:
    store, url = filled
    ok = run("verify", "--db", url, "--format", "json", "--export", "digests")
    assert ok.exit_code == 0, ok.output
    body = json.loads(ok.output)
    assert body["ok"] and body["clusters"]["prod"]["events"] == 4 * PER_DAY
    assert len(body["exported"]) == 2
    assert (tmp_path / f"clickhouse-{store.database}.signing-key.pem").exists()
    signed = json.loads(Path(body["exported"][0]).read_text())
    assert len(signed["chain_heads"]) == 2  # every writer's head is signed
    assert run("verify", "--db", url, "--digests", "digests").exit_code == 0
    # Drop the newest batch of one writer with its record: the store alone cannot tell
    # (the chain is whole, no event is outside it), the signed digest can.
    last = max(
        (s for s in read_records(store, "dev")), key=lambda s: (s.record.seq, s.writer)
    ).record
    for table in ("events", "chain"):
        store._client.command(
            f"DELETE FROM {store.database}.{table} WHERE batch_id = {{b:String}}",
            parameters={"b": last.batch_id},
            settings={"mutations_sync": 2},
        )
    alone = run("verify", "--db", url)
    assert alone.exit_code == 0, alone.output
    failed = run("verify", "--db", url, "--digests", "digests")
    assert failed.exit_code == 1
    assert "digest_mismatch" in failed.output and "truncated" in failed.output


def test_retention_apply_on_a_url(filled: tuple[ClickHouseStore, str]) -> None:
    store, url = filled
    now = (START + timedelta(days=4)).isoformat() + "Z"
    args = ["retention", "apply", "--db", url, "--retention", "dev=2d", "--now", now]
    dry = run(*args, "--dry-run", "--format", "json")
    assert dry.exit_code == 0, dry.output
    removed = json.loads(dry.output)["stores"][0]["removed"]
    assert [(r["cluster"], r["events"], r["batches"]) for r in removed] == [("dev", 2 * PER_DAY, 2)]
    assert store.count("dev") == 4 * PER_DAY
    done = run(*args)
    assert done.exit_code == 0, done.output
    assert f"dev: removed {2 * PER_DAY:,} events" in done.output
    assert store.count("dev") == 2 * PER_DAY and store.count("prod") == 4 * PER_DAY
    verified = run("verify", "--db", url, "--format", "json")
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.output)["clusters"]["dev"]["removed_events"] == 2 * PER_DAY
    under = run("retention", "apply", "--db", url, "--max-size", "1GB")
    assert under.exit_code == 0 and "nothing to remove" in under.output


def test_size_cap_on_a_url(filled: tuple[ClickHouseStore, str]) -> None:
    from kubetrail.store.clickhouse_retention import _usage

    store, url = filled
    cap = int(_usage(store)[0] * 0.6)
    args = ["retention", "apply", "--db", url, "--max-size", str(cap)]
    dry = run(*args, "--dry-run", "--format", "json")
    assert dry.exit_code == 0, dry.output
    body = json.loads(dry.output)["stores"][0]
    assert body["max_size"] == cap and body["used_bytes_after"] <= cap < body["used_bytes_before"]
    removed = {r["cluster"]: r for r in body["removed"]}
    assert set(removed) == {"prod", "dev"}
    assert {(r["kind"], r["estimated"], r["chain_seq"]) for r in removed.values()} == {
        ("eviction", True, None)
    }
    assert store.count("dev") == store.count("prod") == 4 * PER_DAY  # the dry run kept all
    done = run(*args)
    assert done.exit_code == 0, done.output
    events = removed["dev"]["events"]
    assert f"dev: removed {events:,} events" in done.output and "over the size cap" in done.output
    assert "warning: dev: evicted by the store's size cap" in done.output
    assert store.count("dev") == 4 * PER_DAY - events > 0
    verified = run("verify", "--db", url, "--format", "json")
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.output)["clusters"]["dev"]["removed_events"] == events


def test_the_server_schedule_applies_recorded_retention(
    filled: tuple[ClickHouseStore, str],
) -> None:
    from prometheus_client import CollectorRegistry

    from kubetrail.config import ClusterConfig, RetentionConfig, ServerConfig
    from kubetrail.store.verify import verify_store
    from kubetrail.web.retention import RetentionMetrics, RetentionScheduler

    store, url = filled
    config = ServerConfig(db=url)
    config.retention = RetentionConfig(default="1d", interval="1h")
    config.clusters = [ClusterConfig(name="prod", retention="100000d")]
    metrics = RetentionMetrics(CollectorRegistry())
    scheduler = RetentionScheduler.for_server(store, config, metrics)
    scheduler.run_once()  # the real clock: every dev event is years old, prod's are kept
    assert store.count("dev") == 0 and store.count("prod") == 4 * PER_DAY
    assert metrics.removed.labels("dev")._value.get() == 4 * PER_DAY
    assert verify_store(store).ok


def test_the_server_schedule_evicts_above_max_size_with_a_warning(
    filled: tuple[ClickHouseStore, str], caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client import CollectorRegistry

    from kubetrail.config import RetentionConfig, ServerConfig
    from kubetrail.store.clickhouse_retention import _usage
    from kubetrail.store.retention import RetentionPolicy
    from kubetrail.store.verify import verify_store
    from kubetrail.web.retention import RetentionMetrics, RetentionScheduler

    store, url = filled
    cap = int(_usage(store)[0] * 0.6)
    config = ServerConfig(db=url)
    config.retention = RetentionConfig(interval="1h", max_size=str(cap))
    metrics = RetentionMetrics(CollectorRegistry())
    scheduler = RetentionScheduler.for_server(store, config, metrics)
    with caplog.at_level("WARNING", logger="kubetrail.retention"):
        scheduler.run_once()
    gone = {c: 4 * PER_DAY - store.count(c) for c in ("prod", "dev")}
    assert all(gone.values())
    assert {c: metrics.evicted.labels(c)._value.get() for c in gone} == gone
    assert metrics.runs.labels("ok")._value.get() == 1
    assert any("evicted" in r.getMessage() and "max_size" in r.getMessage() for r in caplog.records)
    assert verify_store(store, policy=RetentionPolicy(max_size=cap)).ok
