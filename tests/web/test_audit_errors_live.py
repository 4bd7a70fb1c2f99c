"""``kubetrail serve`` scrapes a cluster's API server metrics on schedule (issue 9): the events
it failed to send show in the overview's gaps (API and page) and on ``/metrics``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from live import ADMIN_TOKEN, base_config, wait_for

from kubetrail.certs import DevCerts
from kubetrail.config import MetricsConfig
from metrics_endpoint import TOKEN, metrics_endpoint

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_the_server_scrapes_and_the_overview_shows_the_lost_events(
    start_server: Any, dev_certs: DevCerts, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    with metrics_endpoint(dev_certs) as endpoint:
        config = base_config(tmp_path / "audit.duckdb")
        config.clusters[0].metrics = MetricsConfig(
            url=endpoint.url, token_file=str(token), ca_file=str(dev_certs.ca), interval="1s"
        )
        endpoint.values.update(webhook_errors=10, events=100)
        live = start_server(config)
        wait_for(lambda: len(endpoint.requests) >= 1, 20)
        endpoint.values.update(webhook_errors=14, events=160)

        def lost() -> list[dict[str, Any]]:
            answer = httpx.get(
                live.url + "/api/overview", params={"range": "1h"}, headers=ADMIN, timeout=30
            )
            assert answer.status_code == 200, answer.text
            return [g for g in answer.json()["gaps"] if g["kind"] == "audit_errors"]

        wait_for(lambda: bool(lost()), 20)
        (gap,) = lost()[:1]
        assert gap["cluster"] == "prod" and gap["plugin"] == "webhook" and gap["events"] == 4
        page = httpx.get(live.url + "/ui/overview", headers=ADMIN, timeout=30)
        assert page.status_code == 200 and 'id="audit-errors"' in page.text
        assert "failed to send 4 audit events" in page.text
        metrics = httpx.get(live.url + "/metrics", headers=ADMIN, timeout=5).text
        assert 'kubetrail_apiserver_scrape_up{cluster="prod"} 1.0' in metrics
        live.stop()
