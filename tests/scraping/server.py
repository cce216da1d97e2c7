"""A real HTTP server on 127.0.0.1 playing shein.com: serves pages by raw path, records requests.

Each path holds a list of responses; a request takes the first one, and the last one stays
(so `[503, 503, 200]` fails twice, then serves the page every time after). Replies can also be
set for one session (by the value of its session cookie), so several cookie files scraped
against one site each see their own orders.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

CHUNK_BYTES = 64 * 1024
SESSION_COOKIE = "sessionID_shein"


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str | bytes = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # Sent in chunks without a Content-Length: the client cannot know the size up front.
    chunked: bool = False


@dataclass(frozen=True)
class SeenRequest:
    raw_path: str
    headers: dict[str, str]
    cookies: dict[str, str]
    at: float  # time.monotonic() on arrival


class FakeSite:
    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = {}
        self.session_replies: dict[tuple[str, str], list[Reply]] = {}
        self.requests: list[SeenRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.url = ""

    def serve(self, path: str, *replies: Reply | str) -> None:
        self.replies[path] = [r if isinstance(r, Reply) else Reply(body=r) for r in replies]

    def serve_session(self, session: str, path: str, *replies: Reply | str) -> None:
        self.session_replies[(session, path)] = [
            r if isinstance(r, Reply) else Reply(body=r) for r in replies
        ]

    def paths(self) -> list[str]:
        return [r.raw_path for r in self.requests]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            SeenRequest(
                raw_path=request.raw_path,
                headers=dict(request.headers),
                cookies=dict(request.cookies),
                at=time.monotonic(),
            )
        )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            session = request.cookies.get(SESSION_COOKIE, "")
            queue = self.session_replies.get((session, request.raw_path)) or self.replies.get(
                request.raw_path
            )
            if not queue:
                return web.Response(status=404, text="Not Found")
            reply = queue.pop(0) if len(queue) > 1 else queue[0]
            if reply.delay:
                await asyncio.sleep(reply.delay)
            body = reply.body.encode() if isinstance(reply.body, str) else reply.body
            headers = {"Content-Type": "text/html; charset=utf-8"} | reply.headers
            if not reply.chunked:
                return web.Response(status=reply.status, body=body, headers=headers)
            response = web.StreamResponse(status=reply.status, headers=headers)
            response.enable_chunked_encoding()
            await response.prepare(request)
            try:
                for start in range(0, len(body), CHUNK_BYTES):
                    await response.write(body[start : start + CHUNK_BYTES])
                await response.write_eof()
            except (ConnectionResetError, ConnectionError):
                pass  # the client stopped reading: what a size cap does
            return response
        finally:
            self.in_flight -= 1


@asynccontextmanager
async def running_site() -> AsyncIterator[FakeSite]:
    site = FakeSite()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", site._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    site.url = f"http://127.0.0.1:{port}"
    try:
        yield site
    finally:
        await runner.cleanup()
