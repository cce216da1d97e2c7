"""ImageLoader against a local image server and Azurite: the bytes decide, limits hold."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from azure.storage.blob.aio import BlobServiceClient

from myapp.processing import PermanentError
from myapp.storage.blobs import BlobStore
from myapp.vectorization.images import (
    ImageDownloadError,
    ImageLoader,
    ImageTooLargeError,
    NotAnImageError,
    display_url,
    load_image_file,
)
from tests.azure.peers import (
    DEV_ACCOUNT_KEY,
    ImageServer,
    ServedFile,
    connection_string,
    free_port,
    make_image,
)

RED = make_image((255, 0, 0))


@pytest.fixture
def loader(http_client: httpx.AsyncClient, blob_store: BlobStore) -> ImageLoader:
    return ImageLoader(http=http_client, blob_store=blob_store)


async def test_loads_an_image_and_names_its_type_from_the_bytes(
    loader: ImageLoader, image_server: ImageServer
) -> None:
    jpeg = make_image((0, 0, 255), fmt="JPEG")
    png_url = image_server.add("/red.png", ServedFile(RED))
    jpeg_url = image_server.add("/blue", ServedFile(jpeg, content_type="application/octet-stream"))

    png = await loader.load(png_url)
    blue = await loader.load(jpeg_url)

    assert (png.content, png.mime_type) == (RED, "image/png")
    assert (blue.content, blue.mime_type) == (jpeg, "image/jpeg")
    assert png.data_url().startswith("data:image/png;base64,iVBOR")


async def test_text_served_as_an_image_is_refused_permanently(
    loader: ImageLoader, image_server: ImageServer
) -> None:
    url = image_server.add("/fake.png", ServedFile(b"<html>not found</html>" * 10))

    with pytest.raises(NotAnImageError, match=r"/fake.png: the content is not a readable image"):
        await loader.load(url)


async def test_a_truncated_image_is_refused(loader: ImageLoader, image_server: ImageServer) -> None:
    url = image_server.add("/cut.png", ServedFile(RED[: len(RED) // 2]))

    with pytest.raises(NotAnImageError):
        await loader.load(url)


async def test_an_image_format_the_model_does_not_take_is_refused(
    loader: ImageLoader, image_server: ImageServer
) -> None:
    url = image_server.add("/icon.ico", ServedFile(make_image((1, 2, 3), fmt="ICO")))

    with pytest.raises(NotAnImageError, match="format ICO is not supported"):
        await loader.load(url)


async def test_missing_image_is_permanent_and_server_trouble_is_transient(
    loader: ImageLoader, image_server: ImageServer
) -> None:
    throttled = image_server.add("/busy.png", ServedFile(b"", status=429))
    broken = image_server.add("/broken.png", ServedFile(b"", status=503))
    forbidden = image_server.add("/secret.png", ServedFile(b"", status=403))

    with pytest.raises(PermanentError, match=r"HTTP 404 Not Found \(the image does not exist\)"):
        await loader.load(f"{image_server.base_url}/nothing-here.png")
    with pytest.raises(PermanentError, match="HTTP 403"):
        await loader.load(forbidden)
    for url in (throttled, broken):
        with pytest.raises(ImageDownloadError) as caught:
            await loader.load(url)
        assert not isinstance(caught.value, PermanentError)


async def test_a_slow_server_is_a_transient_timeout(
    loader: ImageLoader, image_server: ImageServer
) -> None:
    url = image_server.add("/slow.png", ServedFile(RED, delay=1.0))

    with pytest.raises(ImageDownloadError, match="timed out"):
        await loader.load(url, download_timeout=timedelta(milliseconds=200))


async def test_images_over_max_bytes_are_refused_with_or_without_a_length(
    loader: ImageLoader, image_server: ImageServer
) -> None:
    big = make_image((9, 9, 9), size=(300, 300), fmt="BMP")  # ~270 KB
    declared = image_server.add("/big.bmp", ServedFile(big))
    streamed = image_server.add("/big-chunked.bmp", ServedFile(big, chunked=True))

    with pytest.raises(ImageTooLargeError, match=f"image is {len(big)} bytes, over MaxImageBytes"):
        await loader.load(declared, max_bytes=100_000)
    with pytest.raises(ImageTooLargeError, match=r"over MaxImageBytes \(100000 bytes\)"):
        await loader.load(streamed, max_bytes=100_000)
    assert (await loader.load(streamed, max_bytes=len(big))).content == big


async def test_credentials_in_the_url_stay_out_of_error_text(
    loader: ImageLoader, image_server: ImageServer
) -> None:
    url = f"{image_server.base_url}/gone.png?sv=2024&sig=SAS-SIGNATURE-SECRET"

    with pytest.raises(PermanentError) as caught:
        await loader.load(url.replace("http://", "http://user:PASSWORD-SECRET@"))

    assert "SECRET" not in str(caught.value)
    assert "/gone.png" in str(caught.value)
    assert display_url("https://u:p@host:8443/a/b.png?sig=x") == "https://host:8443/a/b.png"


async def test_unsupported_schemes_are_refused(loader: ImageLoader) -> None:
    with pytest.raises(PermanentError, match="only http, https and blob URLs"):
        await loader.load("ftp://127.0.0.1/photo.png")


async def test_loads_blobs_by_blob_scheme_and_by_account_url(
    loader: ImageLoader,
    blob_service: BlobServiceClient,
    blob_store: BlobStore,
    container_name: str,
) -> None:
    container = await blob_service.create_container(container_name)
    await container.upload_blob("photos/red one.png", RED)
    await container.upload_blob("big.png", make_image((5, 5, 5), size=(200, 200)))
    await container.upload_blob("text.png", b"hello, not an image")
    account_url = f"{blob_store.account_url}/{container_name}/photos/red%20one.png"

    by_scheme = await loader.load(f"blob://{container_name}/photos/red one.png")
    by_url = await loader.load(account_url)

    assert by_scheme.content == by_url.content == RED
    with pytest.raises(PermanentError, match="does not exist"):
        await loader.load(f"blob://{container_name}/missing.png")
    with pytest.raises(ImageTooLargeError):
        await loader.load(f"blob://{container_name}/big.png", max_bytes=200)
    with pytest.raises(NotAnImageError):
        await loader.load(f"blob://{container_name}/text.png")


async def test_blob_urls_without_a_storage_account_are_refused(
    http_client: httpx.AsyncClient,
) -> None:
    with pytest.raises(PermanentError, match="ConnectionStrings:BlobStorage"):
        await ImageLoader(http=http_client).load("blob://photos/a.png")


async def test_loads_a_local_file_with_the_same_checks(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    good.write_bytes(RED)
    bad.write_bytes(b"nope")

    assert (await load_image_file(good)).mime_type == "image/png"
    with pytest.raises(NotAnImageError):
        await load_image_file(bad)
    with pytest.raises(ImageTooLargeError):
        await load_image_file(good, max_bytes=10)


async def test_an_empty_body_or_blob_is_not_an_image(
    loader: ImageLoader,
    image_server: ImageServer,
    blob_service: BlobServiceClient,
    container_name: str,
) -> None:
    container = await blob_service.create_container(container_name)
    await container.upload_blob("empty.png", b"")
    url = image_server.add("/empty.png", ServedFile(b""))

    for empty in (url, f"blob://{container_name}/empty.png"):
        with pytest.raises(NotAnImageError, match=r"empty\.png: the content is empty"):
            await loader.load(empty)


async def test_blob_requests_storage_refuses_are_permanent_and_outages_transient(
    loader: ImageLoader, http_client: httpx.AsyncClient
) -> None:
    with pytest.raises(PermanentError, match=r"HTTP 400 InvalidResourceName") as caught:
        await loader.load("blob://Bad_Container!/x.png")
    assert "Bad_Container!/x.png" in str(caught.value)

    offline = connection_string(free_port())
    async with BlobStore.from_connection_string(offline, retries=0) as unreachable:
        offline_loader = ImageLoader(http=http_client, blob_store=unreachable)
        with pytest.raises(ImageDownloadError, match="blob storage: ServiceRequestError") as down:
            await offline_loader.load("blob://photos/a.png")
    assert not isinstance(down.value, PermanentError)
    assert DEV_ACCOUNT_KEY not in str(down.value)


async def test_a_blob_url_without_a_blob_name_says_so(loader: ImageLoader) -> None:
    with pytest.raises(PermanentError, match=r"blob://container/name") as caught:
        await loader.load("blob://photos/")
    assert "ConnectionStrings" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:PASSWORD-SECRET@127.0.0.1:99999/x.png?sig=SAS-SECRET",
        "http://[::1/x.png?sig=SAS-SECRET",
        "http://",
        "http:///no-host.png",
    ],
)
async def test_urls_that_cannot_be_parsed_are_permanent(loader: ImageLoader, url: str) -> None:
    with pytest.raises(PermanentError, match="invalid image URL") as caught:
        await loader.load(url)
    assert "SECRET" not in str(caught.value)


async def test_redirects_are_followed_between_http_urls(
    loader: ImageLoader, image_server: ImageServer
) -> None:
    target = image_server.add("/red.png", ServedFile(RED))
    image_server.redirect("/hop-2", target)
    first = image_server.redirect("/hop-1", "/hop-2")  # relative, as servers often send

    assert (await loader.load(first)).content == RED
    assert image_server.hits == {"/hop-1": 1, "/hop-2": 1, "/red.png": 1}


async def test_a_redirect_to_another_scheme_is_refused_permanently(
    loader: ImageLoader, image_server: ImageServer
) -> None:
    to_ftp = image_server.redirect("/to-ftp", "ftp://user:PASSWORD-SECRET@127.0.0.1/x.png")
    to_file = image_server.redirect("/to-file", "file:///etc/passwd")

    with pytest.raises(PermanentError, match=r"redirected to a ftp URL .*only http and https") as c:
        await loader.load(to_ftp)
    assert "SECRET" not in str(c.value)
    with pytest.raises(PermanentError, match="redirected to a file URL"):
        await loader.load(to_file)


async def test_endless_redirects_and_undecodable_bodies_are_permanent(
    loader: ImageLoader, image_server: ImageServer
) -> None:
    loop = image_server.redirect("/loop", "/loop")
    bad_gzip = image_server.add("/bad.png", ServedFile(RED, headers={"Content-Encoding": "gzip"}))

    with pytest.raises(PermanentError, match="/loop: more than 20 redirects"):
        await loader.load(loop)
    with pytest.raises(PermanentError, match=r"/bad\.png: DecodingError"):
        await loader.load(bad_gzip)
