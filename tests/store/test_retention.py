"""Retention with a fake clock, dry runs, size caps, and per-environment stores."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from kubetrail.config import parse_config
from kubetrail.errors import ConfigError
from kubetrail.model import decode_records, normalize
from kubetrail.store import BatchMeta, DuckDBStore, open_store
from kubetrail.store.layout import RoutedStore, store_layouts
from kubetrail.store.retention import (
    RetentionPolicy,
    apply_retention,
    parse_duration,
    parse_size,
)
from kubetrail.store.verify import verify_store
from testdata import EVENTS
from trail import PER_DAY, START, fill


def _days(store: DuckDBStore, cluster: str) -> list[int]:
    rows = store.query(
        "SELECT DISTINCT datediff('day', ?::TIMESTAMP, stage_time) AS d FROM events "
        "WHERE cluster = ? ORDER BY d",
        [START, cluster],
    )
    return rows.column("d").to_pylist()


@pytest.fixture
def two_clusters(store: DuckDBStore, tmp_path: Path) -> DuckDBStore:
    fill(store, tmp_path / "in", "prod", START, 10)
    fill(store, tmp_path / "in", "dev", START, 10)
    return store


def test_each_cluster_keeps_its_own_retention(two_clusters: DuckDBStore) -> None:
    store = two_clusters
    now = START + timedelta(days=10)  # the fake clock: day 10, events on days 0..9
    policy = RetentionPolicy(default=timedelta(days=3), clusters={"prod": timedelta(days=7)})
    report = apply_retention(store, policy, now=now)
    by_cluster = {r.cluster: r for r in report.removals}
    assert _days(store, "prod") == list(range(3, 10))
    assert _days(store, "dev") == list(range(7, 10))
    assert by_cluster["prod"].events == 3 * PER_DAY and by_cluster["dev"].events == 7 * PER_DAY
    assert by_cluster["prod"].last_time < now - timedelta(days=7) <= by_cluster["prod"].cutoff
    assert by_cluster["dev"].first_time.date() == START.date()
    assert not any(r.estimated for r in report.removals)
    # Recorded in the chain, which still verifies.
    kinds = [r.kind for r in store.chain_records("dev")]
    assert kinds == ["batch"] * 10 + ["retention"]
    assert verify_store(store, policy=policy).ok
    # Running again removes nothing.
    assert apply_retention(store, policy, now=now).removals == []


def test_nothing_younger_than_retention_is_removed(store: DuckDBStore, tmp_path: Path) -> None:
    fill(store, tmp_path / "in", "c", START, 3)
    # A cutoff in the middle of day 1's batch (its events span 36 seconds): the batch stays.
    now = START + timedelta(days=1, seconds=10) + timedelta(days=5)
    apply_retention(store, RetentionPolicy(timedelta(days=5)), now=now)
    assert _days(store, "c") == [1, 2]
    oldest = store.query("SELECT min(stage_time) AS t FROM events").column("t")[0].as_py()
    assert oldest < now - timedelta(days=5)  # kept: its batch is not wholly older


def test_dry_run_changes_nothing(two_clusters: DuckDBStore) -> None:
    store = two_clusters
    before = (store.count(), store.chain_records("prod"), store.chain_records("dev"))
    policy = RetentionPolicy(default=timedelta(days=2))
    report = apply_retention(store, policy, now=START + timedelta(days=10), dry_run=True)
    assert {r.cluster: r.events for r in report.removals} == {
        "prod": 8 * PER_DAY,
        "dev": 8 * PER_DAY,
    }
    assert all(r.estimated and r.seq is None for r in report.removals)
    assert (store.count(), store.chain_records("prod"), store.chain_records("dev")) == before


def test_size_cap_evicts_oldest_first_across_clusters(store: DuckDBStore, tmp_path: Path) -> None:
    for day in range(12):
        fill(
            store, tmp_path / f"d{day}", "old" if day < 6 else "new", START + timedelta(days=day), 1
        )
    store.checkpoint()
    used = store.used_bytes()
    assert used > 0
    report = apply_retention(
        store, RetentionPolicy(max_size=used // 2), now=START + timedelta(days=20)
    )
    evicted = report.evicted
    assert evicted and "old" in evicted
    removed_days = {r.cluster for r in report.removals}
    assert removed_days <= {"old", "new"}
    kept_old = _days(store, "old")
    kept_new = _days(store, "new")
    # Oldest first: nothing of "new" goes while "old" still has a day.
    assert not kept_old or kept_new == list(range(6, 12))
    assert [r.kind for r in store.chain_records("old")][-1] == "eviction"
    assert verify_store(store, policy=RetentionPolicy(max_size=used // 2)).ok
    assert not verify_store(store, policy=RetentionPolicy()).ok  # eviction without a cap


def test_durations_and_sizes() -> None:
    assert parse_duration("400d") == timedelta(days=400)
    assert parse_duration("2w") == timedelta(days=14)
    assert parse_size("50GB") == 50 * 10**9 and parse_size("1MiB") == 1024**2
    assert parse_size(1000) == 1000
    for bad in ("", "400", "d", "-3d", "0d", "1.5d"):
        with pytest.raises(ConfigError):
            parse_duration(bad)
    for bad in ("lots", "-1GB", "0"):
        with pytest.raises(ConfigError):
            parse_size(bad)


CONFIG = {
    "server": {
        "db": "{dir}/main.duckdb",
        "retention": {"default": "30d", "max_size": "10GB"},
        "clusters": [
            {
                "name": "prod-eu",
                "environment": "production",
                "retention": "400d",
                "store": "{dir}/prod.duckdb",
                "max_size": "50GB",
            },
            {"name": "prod-us", "environment": "production", "store": "{dir}/prod.duckdb"},
            {"name": "dev", "environment": "development", "retention": "7d"},
        ],
    }
}


def _config(tmp_path: Path, **changes: object) -> dict:
    import json

    text = json.dumps(CONFIG).replace("{dir}", str(tmp_path))
    data = json.loads(text)
    data["server"].update(changes)
    return data


def test_layout_of_per_environment_stores(tmp_path: Path) -> None:
    server = parse_config(_config(tmp_path)).server
    main, prod = store_layouts(server)
    assert main.default and main.clusters == ["dev"] and main.environments == {"development"}
    assert main.policy.for_cluster("dev") == timedelta(days=7)
    assert main.policy.max_size == 10**10
    assert prod.clusters == ["prod-eu", "prod-us"] and prod.environments == {"production"}
    assert prod.policy.for_cluster("prod-eu") == timedelta(days=400)
    assert prod.policy.for_cluster("prod-us") == timedelta(days=30)
    assert prod.policy.max_size == 50 * 10**9


def test_environments_may_not_share_a_store(tmp_path: Path) -> None:
    data = _config(tmp_path)
    data["server"]["clusters"][2]["store"] = str(tmp_path / "prod.duckdb")
    with pytest.raises(ConfigError, match="development, production would share"):
        parse_config(data)
    data = _config(tmp_path)
    data["server"]["clusters"][2]["max_size"] = "1GB"
    with pytest.raises(ConfigError, match="max_size"):
        parse_config(data)


def test_separate_stores_stay_separate(tmp_path: Path) -> None:
    server = parse_config(_config(tmp_path)).server
    routed = RoutedStore.open(server, open_store)
    lines = list(enumerate((EVENTS / "falco-k8s-audit-traces.jsonl").read_bytes().splitlines(), 1))
    chunk = decode_records(lines, "t")
    tables = {
        c: normalize(chunk, cluster=c, source="t", batch_id="").table
        for c in ("prod-eu", "dev", "prod-us")
    }
    try:
        results = routed.write_group([(t, BatchMeta(c, "t", f"b-{c}")) for c, t in tables.items()])
        stored = {r.stored for r in results}
        assert len(stored) == 1 and stored.pop() > 0  # each in its own file: no duplicates
        routed.write_batch(tables["prod-us"], BatchMeta("prod-us", "t", "again"))
    finally:
        routed.close()
    with open_store(tmp_path / "prod.duckdb", read_only=True) as prod:
        assert set(prod.stats().by_cluster) == {"prod-eu", "prod-us"}
        assert verify_store(prod).ok
    with open_store(tmp_path / "main.duckdb", read_only=True) as main:
        assert set(main.stats().by_cluster) == {"dev"}
        assert verify_store(main).ok
