"""The identity a worker process writes into the rows it claims."""

from __future__ import annotations

import os
import secrets
import socket

WORKER_ID_SUFFIX_BYTES = 3


def new_worker_id() -> str:
    """`<hostname>-<pid>-<6 hex>`: unique per process, readable in `locked_by`."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(WORKER_ID_SUFFIX_BYTES)}"
