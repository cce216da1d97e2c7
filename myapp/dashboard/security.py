"""Who may use the dashboard, and proof that a POST came from its own pages.

- **Token** (`Dashboard:Token`, required off loopback): every request presents it, either as
  `Authorization: Bearer <token>` (API clients) or through the login form, which sets a signed,
  HttpOnly, SameSite=Strict session cookie (the cookie holds a signature, never the token).
  Without a token (loopback only) no login is asked.
- **CSRF**: every action is a POST that must carry a CSRF token: the hidden form field
  `csrf_token` or the header `X-CSRF-Token`. The token is a signature over a random nonce kept
  in the HttpOnly cookie `myapp_csrf` (signed double submit): another site can make a browser
  send the cookie, but cannot read a page to learn the matching token. A request authenticated
  by its Bearer header needs no CSRF token: browsers never add that header by themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer
from starlette.requests import HTTPConnection

SESSION_COOKIE = "myapp_dashboard"
CSRF_COOKIE = "myapp_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE_S = 12 * 3600
CSRF_MAX_AGE_S = 12 * 3600
NONCE_BYTES = 32
_SESSION_SUBJECT = b"operator"


@dataclass(frozen=True)
class Csrf:
    """The nonce of this browser (new: the response must set its cookie) and its form token."""

    nonce: str
    token: str
    new: bool


class Guard:
    def __init__(self, token: str | None) -> None:
        self._token = token
        # With a token, signatures survive a restart (sessions stay logged in); without one,
        # a key of this process alone.
        key = (
            hashlib.sha256(b"myapp.dashboard:" + token.encode()).digest()
            if token
            else secrets.token_bytes(NONCE_BYTES)
        )
        self._sessions = TimestampSigner(key, salt="myapp.dashboard.session")
        self._csrf = URLSafeTimedSerializer(key, salt="myapp.dashboard.csrf")

    @property
    def needs_login(self) -> bool:
        return self._token is not None

    def token_matches(self, candidate: str) -> bool:
        return self._token is not None and hmac.compare_digest(
            candidate.encode(), self._token.encode()
        )

    def bearer_ok(self, connection: HTTPConnection) -> bool:
        scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(credentials.strip())

    def authenticated(self, connection: HTTPConnection) -> bool:
        if self._token is None or self.bearer_ok(connection):
            return True
        cookie = connection.cookies.get(SESSION_COOKIE)
        if cookie is None:
            return False
        try:
            self._sessions.unsign(cookie, max_age=SESSION_MAX_AGE_S)
        except BadSignature:
            return False
        return True

    def session_cookie(self) -> str:
        return self._sessions.sign(_SESSION_SUBJECT).decode()

    def csrf(self, connection: HTTPConnection) -> Csrf:
        nonce = connection.cookies.get(CSRF_COOKIE)
        new = nonce is None or len(nonce) < NONCE_BYTES
        if new:
            nonce = secrets.token_urlsafe(NONCE_BYTES)
        assert nonce is not None
        return Csrf(nonce, self._csrf.dumps(nonce), new)

    def csrf_ok(self, connection: HTTPConnection, submitted: str | None) -> bool:
        nonce = connection.cookies.get(CSRF_COOKIE)
        if not submitted or not nonce:
            return False
        try:
            signed = self._csrf.loads(submitted, max_age=CSRF_MAX_AGE_S)
        except BadSignature:
            return False
        return isinstance(signed, str) and hmac.compare_digest(signed, nonce)
