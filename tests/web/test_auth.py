"""Credentials to principals: hashed tokens, certificate names, ingest permission."""

from __future__ import annotations

import ssl

import pytest

from kubetrail.certs import DevCerts
from kubetrail.config import ClusterConfig, ServerConfig
from kubetrail.web.auth import (
    ADMIN,
    INGEST,
    Authenticator,
    AuthError,
    Principal,
    hash_token,
    new_token,
    require_ingest,
)


def scope(token: str | None = None, cert_pem: str | None = None) -> dict:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    tls = {"tls": {"client_cert_chain": [cert_pem]}} if cert_pem else {}
    return {"headers": headers, "extensions": tls}


@pytest.fixture
def auth() -> Authenticator:
    config = ServerConfig(
        clusters=[
            ClusterConfig(name="prod", token_sha256=[hash_token("p1"), hash_token("p2")]),
            ClusterConfig(name="dev", cert_names=["dev", "dev-apiserver"]),
        ],
        admin_token_sha256=[hash_token("adm")],
    )
    return Authenticator.from_config(config)


def test_tokens(auth: Authenticator) -> None:
    assert auth.authenticate(scope("p2")) == Principal(INGEST, "prod", "token")
    assert auth.authenticate(scope("adm")).role == ADMIN
    for bad in ("p3", "P1"):
        with pytest.raises(AuthError) as info:
            auth.authenticate(scope(bad))
        assert info.value.status == 401
    with pytest.raises(AuthError):
        auth.authenticate(scope())
    assert new_token() != new_token() and len(new_token()) > 40


def test_client_certificate(auth: Authenticator, dev_certs: DevCerts) -> None:
    pem = dev_certs.client.read_text()
    assert ssl.PEM_cert_to_DER_cert(pem)
    assert auth.authenticate(scope(cert_pem=pem)) == Principal(INGEST, "dev", "cert")
    server_pem = dev_certs.server.read_text()  # CN localhost: no such cluster
    with pytest.raises(AuthError) as info:
        auth.authenticate(scope(cert_pem=server_pem))
    assert info.value.status == 403 and "localhost" in info.value.message


def test_require_ingest() -> None:
    prod = Principal(INGEST, "prod", "token")
    assert require_ingest(prod, None) == "prod"
    assert require_ingest(prod, "prod") == "prod"
    for principal, path in ((prod, "dev"), (Principal(ADMIN, None, "token"), None)):
        with pytest.raises(AuthError) as info:
            require_ingest(principal, path)
        assert info.value.status == 403
