"""Test peers besides the model: the Azurite process and a small image web server."""

from __future__ import annotations

import asyncio
import io
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from PIL import Image

AZURITE_BIN = Path(__file__).resolve().parents[1] / "azurite/node_modules/.bin/azurite-blob"
# The well-known development account of the Azure storage emulators (public, documented).
DEV_ACCOUNT = "devstoreaccount1"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
    )


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    @classmethod
    def start(cls, workdir: Path, *, skip_api_version_check: bool = True) -> Azurite:
        """`skip_api_version_check=False` starts it as the docs say, without the flag: it then
        refuses SDK versions newer than itself (400 InvalidHeaderValue)."""
        if not AZURITE_BIN.exists():
            raise RuntimeError(f"{AZURITE_BIN} is missing: run `make test` (npm install) first")
        port = free_port()
        log = workdir / "azurite.log"
        command = [
            str(AZURITE_BIN), "--inMemoryPersistence", "--disableTelemetry",
            "--blobHost", "127.0.0.1", "--blobPort", str(port),
            "--loose", *(["--skipApiVersionCheck"] if skip_api_version_check else []),
        ]  # fmt: skip
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
        azurite = cls(process, port, log)
        azurite._wait_until_listening()
        return azurite

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Azurite exited with {self.process.returncode}: {self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Azurite did not listen on port {self.port} in time: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def make_image(
    color: tuple[int, int, int], size: tuple[int, int] = (8, 8), fmt: str = "PNG"
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


@dataclass
class ServedFile:
    body: bytes
    content_type: str = "image/png"
    status: int = 200
    delay: float = 0.0
    chunked: bool = False
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ImageServer:
    """Serves `files[path]`; counts requests per path."""

    files: dict[str, ServedFile] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    base_url: str = ""
    _runner: web.AppRunner | None = None

    def add(self, path: str, file: ServedFile) -> str:
        self.files[path] = file
        return f"{self.base_url}{path}"

    def redirect(self, path: str, location: str) -> str:
        return self.add(path, ServedFile(b"", status=302, headers={"Location": location}))

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] = self.hits.get(path, 0) + 1
        served = self.files.get(path)
        if served is None:
            return web.Response(status=404, text="no such image")
        if served.delay:
            await asyncio.sleep(served.delay)
        if not served.chunked:
            return web.Response(
                status=served.status,
                body=served.body,
                content_type=served.content_type,
                headers=served.headers,
            )
        # No Content-Length: the loader must stop on the bytes it actually receives.
        response = web.StreamResponse(status=served.status)
        response.content_type = served.content_type
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(served.body), 64 * 1024):
            await response.write(served.body[start : start + 64 * 1024])
        await response.write_eof()
        return response
