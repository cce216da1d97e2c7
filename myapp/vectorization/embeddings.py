"""Image embeddings from Azure AI Inference, through the real async `ImageEmbeddingsClient`.

Several images go in one request (the route takes a list input). Errors are sorted for the claim
protocol: a 400-class answer about the input is a `PermanentError`; 429, 5xx, timeouts and
connection failures are `EmbeddingServiceError`, retried with the claim's backoff. The SDK's own
retries are off by default (`DEFAULT_SDK_RETRIES`) so that a throttled service is not hammered
by two retry loops at once and a claim's lease is not spent waiting inside one call.

The API key is sent by the SDK as `api-key` and `Authorization: Bearer`; it is never logged:
network tracing is forced off and the HTTP logging policy redacts every header not allow-listed.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from azure.ai.inference.aio import ImageEmbeddingsClient
from azure.ai.inference.models import ImageEmbeddingInput
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.pipeline.policies import HttpLoggingPolicy, NetworkTraceLoggingPolicy

from myapp.lifetime import AsyncClosing
from myapp.processing import PermanentError
from myapp.vectorization.images import LoadedImage

DEFAULT_REQUEST_TIMEOUT = timedelta(seconds=60)
DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=10)
DEFAULT_SDK_RETRIES = 0
VECTOR_DTYPE = np.dtype("<f4")
MAX_ERROR_DETAIL = 500
# Headers worth seeing in azure-core's request/response log; neither key header is among them.
LOGGED_HEADERS = frozenset({"content-type", "content-length", "retry-after", "x-request-id"})
# Client errors that say "this input cannot be embedded": retrying the same bytes cannot help.
_PERMANENT_STATUSES = frozenset({400, 413, 415, 422})

Vector = npt.NDArray[np.float32]


class EmbeddingServiceError(Exception):
    """A transient failure of the embeddings service (throttled, down, slow, unreachable)."""


class AzureImageEmbedder(AsyncClosing):
    """Embeds images with one model on one Azure AI endpoint. One instance per process."""

    def __init__(
        self,
        *,
        endpoint: str,
        api_key: str,
        model: str,
        timeout: timedelta = DEFAULT_REQUEST_TIMEOUT,
        retries: int = DEFAULT_SDK_RETRIES,
    ) -> None:
        self._model = model
        self._api_key = api_key
        http_logging = HttpLoggingPolicy()
        http_logging.allowed_header_names = set(LOGGED_HEADERS)
        self._client = ImageEmbeddingsClient(
            endpoint=endpoint,
            credential=AzureKeyCredential(api_key),
            model=model,
            retry_total=retries,
            connection_timeout=DEFAULT_CONNECT_TIMEOUT.total_seconds(),
            read_timeout=timeout.total_seconds(),
            logging_policy=NetworkTraceLoggingPolicy(logging_enable=False),
            http_logging_policy=http_logging,
        )

    @property
    def model(self) -> str:
        return self._model

    async def embed(self, images: Sequence[LoadedImage]) -> list[Vector]:
        """One vector per image, in order, from a single request."""
        if not images:
            return []
        inputs = [ImageEmbeddingInput(image=image.data_url()) for image in images]
        try:
            result = await self._client.embed(input=inputs, logging_enable=False)
        except HttpResponseError as error:
            raise self._classify(error) from None
        except AzureError as error:  # timeouts and connection failures
            raise EmbeddingServiceError(
                f"Azure AI image embeddings: {type(error).__name__}: {self._redact(error.message)}"
            ) from None
        items = sorted(result.data, key=lambda item: int(item.index))
        if [int(item.index) for item in items] != list(range(len(images))):
            raise EmbeddingServiceError(
                f"Azure AI image embeddings returned {len(items)} vectors for {len(images)} images"
            )
        return _checked_vectors([item.embedding for item in items])

    def _classify(self, error: HttpResponseError) -> Exception:
        status = error.status_code
        reason = error.reason or ""
        detail = self._redact(_error_detail(error))
        text = f"Azure AI image embeddings: HTTP {status} {reason}".rstrip() + f": {detail}"
        if status in _PERMANENT_STATUSES:
            return PermanentError(text)
        return EmbeddingServiceError(text)

    def _redact(self, text: Any) -> str:
        # Belt and braces: a service that echoes the request must not put the key in our errors.
        return str(text).replace(self._api_key, "***") if self._api_key else str(text)

    async def close(self) -> None:
        await self._client.close()


def _error_detail(error: HttpResponseError) -> str:
    odata = getattr(error, "error", None)
    message = getattr(odata, "message", None)
    if not message and error.response is not None:
        try:
            message = error.response.text()
        except Exception:  # the body may be unreadable; the status still says enough
            message = ""
    return (str(message or "no details") or "").strip()[:MAX_ERROR_DETAIL]


def _checked_vectors(embeddings: Sequence[str | Sequence[float]]) -> list[Vector]:
    """The vectors as float32, or EmbeddingServiceError when the service sent something unusable.

    Garbage from the service is the service's problem (a retry may well get good vectors), so it
    is transient, but it is never stored: empty vectors, NaN or infinite values (including
    numbers beyond float32's range) and vectors of differing lengths are refused.
    """
    vectors = [_as_vector(embedding, index) for index, embedding in enumerate(embeddings)]
    dimensions = sorted({int(vector.shape[0]) for vector in vectors})
    if len(dimensions) > 1:
        raise EmbeddingServiceError(
            f"Azure AI image embeddings returned vectors of differing dimensions {dimensions} "
            "in one response"
        )
    return vectors


def _as_vector(embedding: str | Sequence[float], index: int) -> Vector:
    problem = f"Azure AI image embeddings returned an unusable vector (input {index})"
    try:
        if isinstance(embedding, str):  # encoding_format=base64: little-endian float32 bytes
            vector = np.frombuffer(base64.b64decode(embedding), dtype=VECTOR_DTYPE).copy()
        else:
            with np.errstate(over="ignore"):  # beyond float32's range becomes inf, refused below
                vector = np.asarray(embedding, dtype=VECTOR_DTYPE)
    except (ValueError, TypeError) as error:
        raise EmbeddingServiceError(f"{problem}: not a list of numbers ({error})") from None
    if vector.ndim != 1:
        raise EmbeddingServiceError(f"{problem}: {vector.ndim} dimensions deep, expected a list")
    if vector.shape[0] == 0:
        raise EmbeddingServiceError(f"{problem}: it has 0 dimensions")
    if not np.isfinite(vector).all():
        bad = int((~np.isfinite(vector)).sum())
        raise EmbeddingServiceError(f"{problem}: {bad} NaN or infinite values")
    return vector
