"""Web sessions and CSRF tokens of the UI, and who is calling ``/api``.

A login creates a server-side session (random id, user, role, CSRF token, expiry); the cookie
holds only the id, signed with itsdangerous, and is ``HttpOnly``, ``SameSite=Lax`` and
``Secure`` (unless ``secure_cookies`` is off for a plain-HTTP loopback server). Logging out
deletes the server-side session, so an old cookie is worthless afterwards. Sessions live in
the memory of one server process: a restart logs everyone out.

Every state-changing request made with a session must carry the session's CSRF token, in the
``csrf`` form field or the ``X-CSRF-Token`` header. Requests with a bearer token need none
(browsers never add the header by themselves).
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from ..config import ServerConfig
from .auth import ADMIN, VIEWER, Authenticator, AuthError, Principal

SESSION_COOKIE = "kubetrail_session"
LOGIN_COOKIE = "kubetrail_login"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 12 * 3600
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
#: scrypt hash of a random password, checked for unknown user names.
_DUMMY_HASH = (
    "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)


@dataclass(frozen=True)
class Session:
    """One logged-in browser."""

    sid: str
    name: str
    role: str
    csrf: str
    expires: float

    @property
    def principal(self) -> Principal:
        """The session as an authenticated caller."""
        return Principal(self.role, None, "session", self.name)


class Sessions:
    """The live sessions of this process and the signer of their cookies.

    Args:
        secret: the signing key (see :func:`session_secret`).
        secure: whether cookies get the ``Secure`` flag.
        seconds: how long a session lives after login.
    """

    def __init__(self, secret: bytes, *, secure: bool = True, seconds: int = SESSION_SECONDS):
        self._signer = URLSafeTimedSerializer(secret, salt="kubetrail-session")
        self._login_signer = URLSafeTimedSerializer(secret, salt="kubetrail-login")
        self._live: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.secure = secure
        self.seconds = seconds

    def create(self, response: Response, name: str, role: str) -> Session:
        """Start a session for a user and set its cookie on ``response``."""
        session = Session(
            secrets.token_urlsafe(24),
            name,
            role,
            secrets.token_urlsafe(24),
            time.time() + self.seconds,
        )
        with self._lock:
            now = time.time()
            self._live = {k: v for k, v in self._live.items() if v.expires > now}
            self._live[session.sid] = session
        self._set(response, SESSION_COOKIE, self._signer.dumps(session.sid), self.seconds)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return session

    def get(self, request: Request) -> Session | None:
        """The live session of a request's cookie, or ``None``."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        try:
            sid = self._signer.loads(cookie, max_age=self.seconds)
        except BadSignature:
            return None
        with self._lock:
            session = self._live.get(str(sid))
        if session is None or session.expires <= time.time():
            return None
        return session

    def end(self, request: Request, response: Response) -> None:
        """Log out: forget the server-side session and clear the cookie."""
        session = self.get(request)
        if session is not None:
            with self._lock:
                self._live.pop(session.sid, None)
        response.delete_cookie(SESSION_COOKIE, path="/", secure=self.secure, httponly=True)

    def login_nonce(self, request: Request, response: Response) -> str:
        """The CSRF token of the login form (a signed double-submit cookie)."""
        nonce = self._login_value(request) or secrets.token_urlsafe(24)
        self._set(response, LOGIN_COOKIE, self._login_signer.dumps(nonce), 3600)
        return nonce

    def check_login_nonce(self, request: Request, submitted: str) -> bool:
        """Whether the login form's token matches its cookie."""
        expected = self._login_value(request)
        return bool(expected) and hmac.compare_digest(str(expected), submitted)

    def _login_value(self, request: Request) -> str | None:
        cookie = request.cookies.get(LOGIN_COOKIE)
        if not cookie:
            return None
        try:
            return str(self._login_signer.loads(cookie, max_age=3600))
        except BadSignature:
            return None

    def _set(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )


def session_secret(config: ServerConfig) -> bytes:
    """The cookie-signing key: ``<db>.session.key`` (created 0600 at first start; for a
    ClickHouse store ``clickhouse-<database>.session.key``), or a random key per process for an
    in-memory store."""
    from ..store.location import sidecar_base

    if config.db == ":memory:":
        return secrets.token_bytes(32)
    path = Path(f"{sidecar_base(config.db)}.session.key")
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    key = secrets.token_bytes(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex() + "\n")
    return key


def web_principal(
    request: Request, auth: Authenticator, sessions: Sessions, *, role: str = VIEWER
) -> Principal:
    """Who calls a UI or ``/api`` route, checked for ``role`` and, on unsafe methods, CSRF.

    Raises:
        AuthError: 401 without a valid session or token; 403 for an ingest token, a viewer
            on an admin route, or a session request without its CSRF token.
    """
    if "authorization" in request.headers:
        principal = auth.authenticate(request.scope)
        if principal.role not in (ADMIN, VIEWER):
            raise AuthError(403, f"a credential with role '{principal.role}' may not use /api")
    else:
        session = sessions.get(request)
        if session is None:
            raise AuthError(401, "log in or send 'Authorization: Bearer <token>'")
        principal = session.principal
        if request.method not in _SAFE:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent, session.csrf):
                raise AuthError(403, "missing or wrong CSRF token")
    if role == ADMIN and principal.role != ADMIN:
        raise AuthError(403, "this action needs the admin role")
    return principal


def check_form_csrf(session: Session, submitted: str) -> None:
    """Refuse a UI form whose ``csrf`` field is not the session's.

    Raises:
        AuthError: 403.
    """
    if not hmac.compare_digest(submitted, session.csrf):
        raise AuthError(403, "missing or wrong CSRF token")


def login(config: ServerConfig, auth: Authenticator, name: str, password: str) -> tuple[str, str]:
    """Check a login form: a configured user's password, or (user ``admin``) an admin token.

    Returns:
        ``(name, role)``.

    Raises:
        AuthError: 401 for an unknown user or a wrong password.
    """
    from .passwords import verify_password

    for user in config.users:
        if user.name == name and user.password_hash:
            if verify_password(password, user.password_hash):
                return user.name, user.role
            raise AuthError(401, "wrong user name or password")
    principal = auth.match_token(password) if name == "admin" else None
    if principal is not None and principal.role == ADMIN:
        return "admin", ADMIN
    verify_password(password, _DUMMY_HASH)  # as slow as a known user: names do not leak
    raise AuthError(401, "wrong user name or password")
