"""The last line of defence: no configured secret leaves the dashboard in a response body.

The pages and the API never select a secret (cookie files, keys) and show the database URL
redacted; this middleware also replaces every configured secret value in every response, so a
secret that reached an error text by accident is still not shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from myapp.data.database import REDACTED
from myapp.settings import AppSettings

# Shorter values would blank out ordinary words; a real secret is longer.
MIN_SECRET_LENGTH = 6
ACCOUNT_KEY = re.compile(r"AccountKey=([^;]+)", re.IGNORECASE)


def secret_values(settings: AppSettings) -> list[str]:
    """Every configured value that must never be shown, longest first."""
    found: list[str] = []
    try:
        password = make_url(settings.connection_strings.database).password
    except ArgumentError:
        password = None
    if password:
        found.append(str(password))
    blob = settings.connection_strings.blob_storage.get_secret_value()
    found += [blob, *ACCOUNT_KEY.findall(blob)]
    keys = (settings.azure_ai.api_key, settings.secrets.cookie_key, settings.dashboard.token)
    for secret in keys:
        if secret is not None:
            value = secret.get_secret_value()
            found += [value, *value.split(",")]
    kept = {value.strip() for value in found if len(value.strip()) >= MIN_SECRET_LENGTH}
    return sorted(kept, key=len, reverse=True)


class RedactSecrets:
    """ASGI middleware: buffers each response body and replaces the secrets in it."""

    def __init__(self, app: ASGIApp, secrets: Iterable[str]) -> None:
        self.app = app
        self.secrets = [s.encode() for s in secrets]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.secrets:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()

        async def redacting_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            assert start is not None
            cleaned = self.redact(bytes(body))
            headers = [
                (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
            ]
            headers.append((b"content-length", str(len(cleaned)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": cleaned})

        await self.app(scope, receive, redacting_send)

    def redact(self, body: bytes) -> bytes:
        for secret in self.secrets:
            body = body.replace(secret, REDACTED.encode())
        return body
