"""Password hashes of configured web users: scrypt with a per-password salt.

The stored form is ``scrypt$N$r$p$<salt b64>$<hash b64>`` so that the cost can be raised later
without breaking existing hashes. Tokens (high-entropy, random) use plain SHA-256 instead (see
:mod:`kubetrail.web.auth`); passwords are chosen by people and need a slow hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

_N, _R, _P = 2**14, 8, 1
_FORMAT = re.compile(r"^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


def hash_password(password: str) -> str:
    """The storable scrypt hash of a password (a fresh 16-byte salt each call)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def is_password_hash(value: str) -> bool:
    """Whether ``value`` has the form :func:`hash_password` writes."""
    return _FORMAT.match(value) is not None


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the stored hash (constant-time comparison)."""
    match = _FORMAT.match(stored)
    if match is None:
        return False
    n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    salt, expected = base64.b64decode(match.group(4)), base64.b64decode(match.group(5))
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=2**26
    )
    return hmac.compare_digest(digest, expected)
