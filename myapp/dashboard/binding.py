"""Where the dashboard listens: loopback unless a token guards it, and the socket it serves."""

from __future__ import annotations

import ipaddress
import socket

from myapp.processing.errors import ConfigurationError
from myapp.settings import DashboardSettings

LOOPBACK_NAMES = ("localhost",)
BACKLOG = 128


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`; any other name or address may be reached from outside."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: DashboardSettings) -> None:
    """Refuse to serve a non-loopback address without `Dashboard:Token`."""
    if settings.token is None and not is_loopback(settings.host):
        raise ConfigurationError(
            "Dashboard:Host",
            settings.host,
            "a loopback address (127.0.0.1, ::1, localhost) unless Dashboard:Token is set: "
            "the dashboard can requeue work, so anyone who can reach it must present the token",
        )


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0: any free port). Bound here rather than by
    uvicorn, so a port in use is an OSError at start-up, not uvicorn's `sys.exit(1)`."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
