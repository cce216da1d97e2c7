"""Loading a photo's bytes and making sure they are an image worth sending to the model.

Sources: `http(s)://` URLs (httpx, streamed, stopped one chunk past the size limit), blobs in the
configured storage account (`blob://container/name`, or a URL on the account's blob endpoint,
read with the account's credentials so private containers work), and local files (the CLI).
The bytes decide what an image is, not the Content-Type: Pillow must identify and verify them.

Failures a retry cannot fix raise `PermanentError`: a 404, other 4xx answers, not an image (an
empty body included), too big, a URL that cannot be parsed, a redirect to anything but http(s),
too many redirects, a body that cannot be decoded. Timeouts, 429, 5xx and connection failures
raise `ImageDownloadError`, a plain exception the claim protocol retries with backoff.

Redirects are followed, also to other hosts; addresses are not filtered, so whoever writes photo
URLs can make the worker fetch from its own network (loopback, private ranges, cloud metadata).
Only the bytes of an image come back from such a fetch, but photo URLs must come from a trusted
source.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from azure.core.exceptions import AzureError
from PIL import Image, UnidentifiedImageError

from myapp.processing import PermanentError
from myapp.storage.blobs import BLOB_URL_SCHEME, BlobStore, BlobTooLargeError
from myapp.storage.problems import describe

DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
DEFAULT_DOWNLOAD_TIMEOUT = timedelta(seconds=30)
# Formats image-embedding models accept; anything else Pillow can read is refused by name.
SUPPORTED_FORMATS = frozenset({"PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"})
# Like httpx's default; each target is checked before it is asked (see `_check_redirect`).
MAX_REDIRECTS = 20
_HTTP_SCHEMES = frozenset({"http", "https"})
_GONE = frozenset({404, 410})
_RETRYABLE = frozenset({408, 425, 429})


@dataclass(frozen=True)
class LoadedImage:
    content: bytes
    mime_type: str

    def data_url(self) -> str:
        return f"data:{self.mime_type};base64,{base64.b64encode(self.content).decode('ascii')}"


class ImageDownloadError(Exception):
    """A transient failure to fetch an image (timeout, 429, 5xx, connection error)."""


class ImageTooLargeError(PermanentError):
    pass


class NotAnImageError(PermanentError):
    pass


def identify_image(content: bytes, source: str) -> LoadedImage:
    """The bytes as a `LoadedImage`, or `NotAnImageError` saying why they are not one."""
    if not content:
        raise NotAnImageError(f"{source}: the content is empty, not an image")
    try:
        with Image.open(io.BytesIO(content)) as image:
            image_format = image.format or ""
            image.verify()
    except Image.DecompressionBombError as error:
        raise NotAnImageError(f"{source}: image dimensions are too large ({error})") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise NotAnImageError(f"{source}: the content is not a readable image") from error
    if image_format not in SUPPORTED_FORMATS:
        raise NotAnImageError(
            f"{source}: image format {image_format or 'unknown'} is not supported "
            f"(supported: {', '.join(sorted(SUPPORTED_FORMATS))})"
        )
    return LoadedImage(content, Image.MIME.get(image_format, f"image/{image_format.lower()}"))


def display_url(url: str) -> str:
    """The URL without credentials or query string: SAS tokens and passwords stay out of logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:  # a port out of range: shown without it
        netloc = host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def checked_source(url: str) -> str:
    """`display_url(url)`, or PermanentError when the URL cannot be parsed at all."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port out of range
        if parts.scheme in _HTTP_SCHEMES:
            httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as error:
        # The reason only: an unparsable URL cannot be stripped of its credentials reliably.
        raise PermanentError(f"invalid image URL ({error})") from None
    if parts.scheme in _HTTP_SCHEMES and not parts.hostname:
        raise PermanentError(f"invalid image URL {display_url(url)!r} (no host)")
    return display_url(url)


class ImageLoader:
    def __init__(self, *, http: httpx.AsyncClient, blob_store: BlobStore | None = None) -> None:
        self._http = http
        self._blobs = blob_store

    async def load(
        self,
        url: str,
        *,
        max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        download_timeout: timedelta = DEFAULT_DOWNLOAD_TIMEOUT,
    ) -> LoadedImage:
        source = checked_source(url)
        scheme = urlsplit(url).scheme
        blob = self._blobs.parse_blob_url(url) if self._blobs is not None else None
        if blob is not None:
            content = await self._download_blob(blob, source, max_bytes)
        elif scheme == BLOB_URL_SCHEME and self._blobs is None:
            raise PermanentError(
                f"{source}: blob URLs need ConnectionStrings:BlobStorage to be configured"
            )
        elif scheme == BLOB_URL_SCHEME:
            raise PermanentError(
                f"{source}: a blob URL names a container and a blob (blob://container/name)"
            )
        elif scheme in _HTTP_SCHEMES:
            content = await self._download(url, source, max_bytes, download_timeout)
        else:
            raise PermanentError(f"{source}: only http, https and blob URLs are supported")
        return identify_image(content, source)

    async def _download_blob(self, blob: tuple[str, str], source: str, max_bytes: int) -> bytes:
        assert self._blobs is not None
        try:
            return await self._blobs.download(*blob, max_bytes=max_bytes)
        except BlobTooLargeError as error:
            raise _too_large(source, error.size, max_bytes) from error
        except AzureError as error:  # what the store did not call permanent: 5xx, 429, timeouts
            raise ImageDownloadError(f"{source}: blob storage: {describe(error)}") from error

    async def _download(self, url: str, source: str, max_bytes: int, limit: timedelta) -> bytes:
        try:
            request = self._http.build_request("GET", url, timeout=limit.total_seconds())
            # Redirects are followed here, not by httpx, to see each target before asking it.
            for _ in range(MAX_REDIRECTS + 1):
                response = await self._http.send(request, stream=True, follow_redirects=False)
                async with contextlib.aclosing(response):
                    if response.next_request is None:
                        return await _read_body(response, source, max_bytes)
                    request = response.next_request
                _check_redirect(request.url, source)
        except httpx.TimeoutException as error:
            raise ImageDownloadError(f"{source}: timed out after {limit}") from error
        except (httpx.UnsupportedProtocol, httpx.DecodingError, httpx.InvalidURL) as error:
            raise PermanentError(f"{source}: {type(error).__name__}: {error}") from error
        except httpx.TransportError as error:
            raise ImageDownloadError(f"{source}: {type(error).__name__}") from error
        raise PermanentError(f"{source}: more than {MAX_REDIRECTS} redirects")


async def load_image_file(path: Path, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> LoadedImage:
    """A local image file (the CLI's query image), with the same checks as a download."""
    size = (await asyncio.to_thread(path.stat)).st_size
    if size > max_bytes:
        raise _too_large(str(path), size, max_bytes)
    return identify_image(await asyncio.to_thread(path.read_bytes), str(path))


async def _read_body(response: httpx.Response, source: str, max_bytes: int) -> bytes:
    _check_status(response, source)
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(source, int(declared), max_bytes)
    chunks: list[bytes] = []
    received = 0
    async for chunk in response.aiter_bytes():
        received += len(chunk)
        if received > max_bytes:
            raise _too_large(source, None, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _check_redirect(target: httpx.URL, source: str) -> None:
    if target.scheme not in _HTTP_SCHEMES:
        raise PermanentError(
            f"{source}: redirected to a {target.scheme or 'scheme-less'} URL "
            f"({display_url(str(target))}); only http and https redirects are followed"
        )


def _check_status(response: httpx.Response, source: str) -> None:
    status = response.status_code
    if status < 400:
        return
    text = f"{source}: HTTP {status} {response.reason_phrase}".rstrip()
    if status in _GONE:
        raise PermanentError(f"{text} (the image does not exist)")
    if status in _RETRYABLE or status >= 500:
        raise ImageDownloadError(text)
    raise PermanentError(text)


def _too_large(source: str, size: int | None, max_bytes: int) -> ImageTooLargeError:
    actual = f"{size} bytes, " if size is not None else ""
    return ImageTooLargeError(f"{source}: image is {actual}over MaxImageBytes ({max_bytes} bytes)")
