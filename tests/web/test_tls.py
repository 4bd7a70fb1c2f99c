"""Real TLS on loopback: server certificate, bearer tokens over TLS, client certificates."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from live import PATH, PROD_TOKEN, assert_error, base_config, demo_events, event_list

from kubetrail.certs import DevCerts, write_client_cert, write_dev_certs
from kubetrail.config import TLSConfig
from kubetrail.web.server import TLSH11Protocol


def tls_server(start_server: Any, tmp_path: Path, certs: DevCerts, **overrides: Any) -> Any:
    config = base_config(tmp_path / "tls.duckdb")
    config.tls = TLSConfig(str(certs.server), str(certs.server_key), str(certs.ca))
    return start_server(config, **overrides)


def context(certs: DevCerts, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    if client is not None:
        ctx.load_cert_chain(str(client[0]), str(client[1]))
    return ctx


@pytest.mark.parametrize(
    "overrides",
    [{}, {"http": TLSH11Protocol, "loop": "asyncio"}],
    ids=["default", "h11-asyncio"],
)
def test_client_certificate_names_the_cluster(
    start_server: Any, tmp_path: Path, dev_certs: DevCerts, overrides: dict[str, Any]
) -> None:
    live = tls_server(start_server, tmp_path, dev_certs, **overrides)
    ctx = context(dev_certs, (dev_certs.client, dev_certs.client_key))
    with httpx.Client(verify=ctx) as client:
        r = client.post(live.url + PATH, json=event_list(demo_events(7)))
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 7
    assert live.count("dev") == 7


def test_token_over_tls_and_no_credential(
    start_server: Any, tmp_path: Path, dev_certs: DevCerts
) -> None:
    live = tls_server(start_server, tmp_path, dev_certs)
    with httpx.Client(verify=context(dev_certs)) as client:
        auth = {"Authorization": f"Bearer {PROD_TOKEN}"}
        ok = client.post(live.url + PATH, json=event_list(demo_events(2)), headers=auth)
        assert ok.status_code == 200 and ok.json()["accepted"] == 2
        assert_error(client.post(live.url + PATH, json=event_list(demo_events(1))), 401)
    assert live.count("prod") == 2


def test_certificate_of_unknown_cluster_is_forbidden(
    start_server: Any, tmp_path: Path, dev_certs: DevCerts
) -> None:
    live = tls_server(start_server, tmp_path, dev_certs)
    other = write_dev_certs(tmp_path / "other", cluster="staging")
    stranger = (tmp_path / "stranger.pem", tmp_path / "stranger-key.pem")
    write_client_cert(dev_certs.ca, dev_certs.ca_key, "staging", *stranger)
    with httpx.Client(verify=context(dev_certs, stranger)) as client:
        r = client.post(live.url + PATH, json=event_list(demo_events(1)))
        assert "staging" in assert_error(r, 403)["error"]
    ctx = context(dev_certs, (dev_certs.client, dev_certs.client_key))
    with httpx.Client(verify=ctx) as client:
        r = client.post(live.url + "/ingest/v1/clusters/prod/events", json=event_list([]))
        assert "prod" in assert_error(r, 403)["error"]
    foreign = context(dev_certs, (other.client, other.client_key))
    with httpx.Client(verify=foreign) as client, pytest.raises(httpx.TransportError):
        client.post(live.url + PATH, json=event_list(demo_events(1)))
