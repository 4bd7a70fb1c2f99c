"""Who is calling: bearer tokens and TLS client certificates, mapped to a principal.

Tokens are never kept in clear: the configuration holds their SHA-256, and a presented token is
hashed and compared with :func:`hmac.compare_digest` against every known hash (a fixed amount
of work per known token, whatever matches). A client certificate has already been verified
against ``tls.client_ca`` by the TLS layer; its CN or DNS SAN names the cluster. The server
passes the certificate in the ASGI ``tls`` extension (``scope["extensions"]["tls"]``).

The web API reuses :class:`Authenticator` with the ``admin`` and ``viewer`` roles (tokens of
``server.admin_token_sha256`` and ``server.users[].token_sha256``); ingest accepts only
``ingest`` principals, and takes the cluster from the principal.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..config import ServerConfig

INGEST = "ingest"
ADMIN = "admin"
VIEWER = "viewer"


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token, as written in the configuration."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return "kt_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    Attributes:
        role: ``ingest`` (a cluster sending events) or ``admin``.
        cluster: the cluster of an ``ingest`` principal, else ``None``.
        via: ``token``, ``cert`` or ``session`` (a web UI login).
        name: the web user's name (``admin`` for the admin token), else ``None``.
    """

    role: str
    cluster: str | None
    via: str
    name: str | None = None


class AuthError(Exception):
    """The request is refused: ``status`` 401 (no or bad credential) or 403 (not allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Authenticator:
    """Maps credentials to principals.

    Args:
        tokens: ``(sha256_hex, principal)`` pairs.
        cert_names: certificate CN/SAN value → cluster name.
    """

    def __init__(self, tokens: Iterable[tuple[str, Principal]], cert_names: dict[str, str]) -> None:
        self._tokens = [(bytes.fromhex(h), p) for h, p in tokens]
        self._cert_names = dict(cert_names)

    @classmethod
    def from_config(cls, config: ServerConfig) -> Authenticator:
        """Build the authenticator of a server configuration."""
        tokens: list[tuple[str, Principal]] = []
        names: dict[str, str] = {}
        for cluster in config.clusters:
            principal = Principal(INGEST, cluster.name, "token")
            tokens += [(h, principal) for h in cluster.token_sha256]
            for name in cluster.cert_names or [cluster.name]:
                names[name] = cluster.name
        tokens += [(h, Principal(ADMIN, None, "token", "admin")) for h in config.admin_token_sha256]
        for user in config.users:
            principal = Principal(user.role, None, "token", user.name)
            tokens += [(h, principal) for h in user.token_sha256]
        return cls(tokens, names)

    def authenticate(self, scope: dict[str, Any]) -> Principal:
        """The principal of a request, from its bearer token or else its client certificate.

        Raises:
            AuthError: 401 when there is no credential or it is unknown, 403 when a valid
                client certificate names no configured cluster.
        """
        header = _header(scope, b"authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError(401, "the Authorization header must be 'Bearer <token>'")
            principal = self._match_token(token.strip())
            if principal is None:
                raise AuthError(401, "unknown bearer token")
            return principal
        names = client_cert_names(scope)
        if names is None:
            raise AuthError(401, "a bearer token or a client certificate is required")
        for name in names:
            if name in self._cert_names:
                return Principal(INGEST, self._cert_names[name], "cert")
        shown = ", ".join(names) or "none"
        raise AuthError(403, f"the client certificate (names: {shown}) names no configured cluster")

    def match_token(self, token: str) -> Principal | None:
        """The principal of a bearer token, or ``None`` (used by the web login form)."""
        return self._match_token(token)

    def _match_token(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found = None
        for known, principal in self._tokens:
            if hmac.compare_digest(digest, known) and found is None:
                found = principal
        return found


def require_ingest(principal: Principal, path_cluster: str | None) -> str:
    """The cluster an ingest request writes to.

    Raises:
        AuthError: 403 when the principal may not ingest, or names another cluster than the
            path's.
    """
    if principal.role != INGEST or principal.cluster is None:
        raise AuthError(403, f"a credential with role '{principal.role}' may not send events")
    if path_cluster is not None and path_cluster != principal.cluster:
        raise AuthError(
            403, f"this credential sends for cluster '{principal.cluster}', not '{path_cluster}'"
        )
    return principal.cluster


def client_cert_names(scope: dict[str, Any]) -> list[str] | None:
    """The CN and DNS SANs of the verified client certificate, or ``None`` without one."""
    tls = scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return None
    cert = x509.load_pem_x509_certificate(chain[0].encode("ascii"))
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += [n for n in san.get_values_for_type(x509.DNSName) if n not in names]
    except x509.ExtensionNotFound:
        pass
    return names


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None
