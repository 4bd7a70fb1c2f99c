"""``kubetrail serve`` applies retention on its schedule and writes clusters to their own files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from live import ADMIN_TOKEN, AUTH, PATH, PROD_TOKEN, base_config, demo_events, event_list

from kubetrail.config import ClusterConfig, RetentionConfig
from kubetrail.store import open_store
from kubetrail.store.verify import verify_store
from kubetrail.web.auth import hash_token
from trail import PER_DAY, START, fill

DEADLINE_SECONDS = 20.0


def test_serve_applies_retention_and_keeps_prod_apart(start_server: Any, tmp_path: Path) -> None:
    main, prod = tmp_path / "main.duckdb", tmp_path / "prod.duckdb"
    with open_store(main) as store:
        fill(store, tmp_path / "in", "dev", START, 3)  # older than dev's 1 day
        fill(store, tmp_path / "in", "other", START, 2)  # no retention: kept

    config = base_config(main)
    config.clusters = [
        ClusterConfig(
            name="prod",
            token_sha256=[hash_token(PROD_TOKEN)],
            environment="production",
            store=str(prod),
            retention="100000d",
        ),
        ClusterConfig(name="dev", environment="development", retention="1d"),
    ]
    config.retention = RetentionConfig(interval="1h")
    live = start_server(config)
    events: list[Any] = demo_events(30)
    events[4] = "not an event"  # refused: quarantined next to prod's own store
    response = httpx.post(live.url + PATH, json=event_list(events), headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    assert [r["index"] for r in response.json()["rejected"]] == [4]
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    deadline = time.monotonic() + DEADLINE_SECONDS
    metrics = ""
    while time.monotonic() < deadline:
        metrics = httpx.get(live.url + "/metrics", headers=admin, timeout=5).text
        if 'kubetrail_retention_removed_events_total{cluster="dev"}' in metrics:
            break
        time.sleep(0.05)
    assert f'kubetrail_retention_removed_events_total{{cluster="dev"}} {3 * PER_DAY}.0' in metrics
    live.stop()
    with open_store(main, read_only=True) as store:
        assert store.stats().by_cluster == {"other": 2 * PER_DAY}
        assert verify_store(store).ok
    assert len(Path(f"{prod}.quarantine.jsonl").read_text().splitlines()) == 1
    assert not Path(f"{main}.quarantine.jsonl").exists()
    with open_store(prod, read_only=True) as store:
        assert set(store.stats().by_cluster) == {"prod"} and store.count() > 0
        assert verify_store(store).ok
