"""Storage errors in words, and which of them a retry cannot fix."""

from __future__ import annotations

from enum import Enum

from azure.core.exceptions import AzureError, HttpResponseError

MAX_DETAIL = 200
# 4xx answers a retry can fix: timeout, too early, throttled; and 401/403, which with our own
# account credentials mean the configuration is wrong (fixing it must not find every photo
# dead-lettered).
_RETRYABLE_CLIENT_ERRORS = frozenset({401, 403, 408, 425, 429})


def describe(error: AzureError) -> str:
    """E.g. `HTTP 400 InvalidHeaderValue: The API version ... is not supported`.

    Only the first line of the service's message: the rest is request ids and times, and (for
    authentication failures) the string the service signed.
    """
    detail = (str(error.message or "").strip().splitlines() or [""])[0][:MAX_DETAIL]
    if isinstance(error, HttpResponseError):
        code = getattr(error, "error_code", None) or error.reason or ""
        code = code.value if isinstance(code, Enum) else code  # StorageErrorCode is an Enum
        head = f"HTTP {error.status_code} {code}".rstrip()
    else:
        head = type(error).__name__
    return f"{head}: {detail}" if detail else head


def is_permanent_refusal(error: HttpResponseError) -> bool:
    status = error.status_code or 0
    return 400 <= status < 500 and status not in _RETRYABLE_CLIENT_ERRORS
