"""Certificates for local testing: a CA, a server certificate and a client certificate.

``kubetrail certs dev`` writes them with :mod:`cryptography` (ECDSA P-256, SHA-256). The
client certificate's CN and DNS SAN are the cluster name, which is how the server maps a
client certificate to a cluster. Not for production: use your own PKI (cert-manager, kubeadm's
CA) there.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class DevCerts:
    """Paths of the files :func:`write_dev_certs` wrote."""

    ca: Path
    ca_key: Path
    server: Path
    server_key: Path
    client: Path
    client_key: Path


def write_dev_certs(
    directory: str | Path,
    *,
    cluster: str = "dev",
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"),
    days: int = 365,
) -> DevCerts:
    """Write ``ca.pem``, ``server.pem``, ``client.pem`` and their ``-key.pem`` files.

    Args:
        directory: where to write (created if missing); keys are mode 0600.
        cluster: the client certificate's CN and DNS SAN (default ``dev``).
        hosts: DNS names and IP addresses of the server certificate.
        days: validity in days (default 365).

    Returns:
        The paths written.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubetrail dev CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key, server = _leaf(ca, ca_key, hosts[0], hosts, ExtendedKeyUsageOID.SERVER_AUTH, days)
    client_key, client = _leaf(
        ca, ca_key, cluster, (cluster,), ExtendedKeyUsageOID.CLIENT_AUTH, days
    )
    paths = DevCerts(
        ca=out / "ca.pem",
        ca_key=out / "ca-key.pem",
        server=out / "server.pem",
        server_key=out / "server-key.pem",
        client=out / "client.pem",
        client_key=out / "client-key.pem",
    )
    for path, cert in ((paths.ca, ca), (paths.server, server), (paths.client, client)):
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    for path, key in (
        (paths.ca_key, ca_key),
        (paths.server_key, server_key),
        (paths.client_key, client_key),
    ):
        _write_key(path, key)
    return paths


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _leaf(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    names: tuple[str, ...],
    usage: x509.ObjectIdentifier,
    days: int,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _builder(subject, ca.subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def write_client_cert(
    ca_cert: str | Path,
    ca_key: str | Path,
    cluster: str,
    cert: str | Path,
    key: str | Path,
    *,
    days: int = 365,
) -> None:
    """Issue one more client certificate for ``cluster`` from an existing CA's files.

    Args:
        ca_cert: the CA certificate (PEM).
        ca_key: the CA's private key (PEM, unencrypted).
        cluster: the certificate's CN and DNS SAN.
        cert: where to write the certificate.
        key: where to write its key (mode 0600).
        days: validity in days (default 365).
    """
    ca = x509.load_pem_x509_certificate(Path(ca_cert).read_bytes())
    signer = serialization.load_pem_private_key(Path(ca_key).read_bytes(), password=None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey), "the dev CA key is ECDSA"
    leaf_key, leaf = _leaf(ca, signer, cluster, (cluster,), ExtendedKeyUsageOID.CLIENT_AUTH, days)
    Path(cert).write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    _write_key(Path(key), leaf_key)
