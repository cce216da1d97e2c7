"""BlobCleanup against the Azurite emulator: exactly the old blobs of the right container go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob.aio import BlobServiceClient

from myapp.handlers.blob_cleanup import (
    DEFAULT_CONTAINER_NAME,
    DEFAULT_MAX_AGE,
    BlobCleanupHandler,
    BlobCleanupOptions,
    ExpiredBlob,
)
from myapp.processing import HandlerRegistration, WorkItemProcessingEngine
from myapp.storage.blobs import BlobStore
from myapp.storage.listing import BlobInfo
from myapp.storage.undeletable import UndeletableBlobs
from tests.azure.peers import DEV_ACCOUNT_KEY, Azurite, connection_string, free_port
from tests.fixtures.clock import FakeClock

MAX_AGE = timedelta(hours=24)


@pytest.fixture
async def azurite_offline_store() -> AsyncIterator[BlobStore]:
    """A store whose endpoint is a loopback port nothing listens on."""
    unreachable = connection_string(free_port())
    async with BlobStore.from_connection_string(unreachable, retries=0) as store:
        yield store


async def upload(service: BlobServiceClient, container: str, names: Iterable[str]) -> datetime:
    """Upload the blobs; return the latest creation time the service recorded for them."""
    client = service.get_container_client(container)
    if not await client.exists():
        await client.create_container()
    latest = datetime.min.replace(tzinfo=UTC)
    for name in names:
        await client.upload_blob(name, f"content of {name}".encode(), overwrite=True)
        created = (await client.get_blob_client(name).get_blob_properties()).creation_time
        latest = max(latest, created.astimezone(UTC))
    return latest


async def names_in(service: BlobServiceClient, container: str) -> set[str]:
    client = service.get_container_client(container)
    return {blob.name async for blob in client.list_blobs()}


async def upload_old_then_new(
    service: BlobServiceClient, container: str, old: list[str], new: list[str]
) -> tuple[datetime, datetime]:
    """Old blobs, then new ones at a later creation time (the service records whole seconds)."""
    old_created = await upload(service, container, old)
    await asyncio.sleep(1.1 - datetime.now(UTC).microsecond / 1_000_000 % 1)
    new_created = await upload(service, container, new)
    assert new_created > old_created
    return old_created, new_created


def clock_past_max_age(created: datetime) -> FakeClock:
    return FakeClock(created + MAX_AGE + timedelta(seconds=1))


def handler(store: BlobStore, container: str, clock: FakeClock) -> BlobCleanupHandler:
    options = BlobCleanupOptions(ContainerName=container, MaxAge="24:00:00")
    return BlobCleanupHandler(options=options, blob_store=store, clock=clock)


def test_options_defaults_and_config_names() -> None:
    defaults = BlobCleanupOptions()
    assert (defaults.container_name, defaults.max_age) == (DEFAULT_CONTAINER_NAME, DEFAULT_MAX_AGE)
    assert (defaults.container_name, defaults.max_age) == ("search-images", timedelta(hours=24))
    parsed = BlobCleanupOptions.model_validate({"containername": "x-images", "MaxAge": "01:30:00"})
    assert (parsed.container_name, parsed.max_age) == ("x-images", timedelta(minutes=90))


async def test_moving_the_clock_deletes_exactly_the_old_blobs_of_its_container(
    blob_service: BlobServiceClient, blob_store: BlobStore, container_name: str
) -> None:
    other = f"{container_name}-other"
    old, new = ["old-1.png", "old-2.png", "dir/old-3.png"], ["new-1.png", "new-2.png"]
    await upload(blob_service, other, ["old-elsewhere.png"])
    _, new_created = await upload_old_then_new(blob_service, container_name, old, new)
    clock = FakeClock(new_created + MAX_AGE - timedelta(hours=1))
    cleanup = handler(blob_store, container_name, clock)

    assert await cleanup.fetch_work_items(10) == []  # nothing is 24 h old yet

    clock.advance(timedelta(hours=1))  # the cutoff is now the new blobs' creation time
    items = await cleanup.fetch_work_items(10)
    assert sorted(item.name for item in items) == sorted(old)
    for item in items:
        await cleanup.process(item)

    assert await names_in(blob_service, container_name) == set(new)
    assert await names_in(blob_service, other) == {"old-elsewhere.png"}


async def test_cycles_through_the_engine_delete_old_blobs_at_most_max_items_each(
    blob_service: BlobServiceClient, blob_store: BlobStore, container_name: str
) -> None:
    old = [f"old-{i}.png" for i in range(5)]
    _, new_created = await upload_old_then_new(blob_service, container_name, old, ["new.png"])
    clock = FakeClock(new_created + MAX_AGE)
    registration = HandlerRegistration(
        lambda: handler(blob_store, container_name, clock),
        name="BlobCleanup",
        max_items_per_cycle=3,
    )
    engine = WorkItemProcessingEngine([registration], max_concurrency=4)

    first = await engine.run_cycle()
    assert (first.succeeded, first.failed) == (3, 0)
    assert len(await names_in(blob_service, container_name)) == 3  # 2 old + new

    second = await engine.run_cycle()
    assert (second.succeeded, second.failed) == (2, 0)
    assert await names_in(blob_service, container_name) == {"new.png"}

    third = await engine.run_cycle()
    assert third.handlers["BlobCleanup"].fetched == 0


async def test_fetch_respects_max_items(
    blob_service: BlobServiceClient, blob_store: BlobStore, container_name: str
) -> None:
    created = await upload(blob_service, container_name, [f"b{i}.png" for i in range(7)])
    cleanup = handler(blob_store, container_name, clock_past_max_age(created))

    items = await cleanup.fetch_work_items(4)

    assert len(items) == 4
    assert len({item.id for item in items}) == 4
    assert await cleanup.fetch_work_items(0) == []


async def test_process_deletes_the_blob_and_a_blob_already_gone_counts_as_done(
    blob_service: BlobServiceClient, blob_store: BlobStore, container_name: str
) -> None:
    created = await upload(blob_service, container_name, ["a.png", "b.png"])
    cleanup = handler(blob_store, container_name, clock_past_max_age(created))
    items = {item.name: item for item in await cleanup.fetch_work_items(10)}
    await blob_service.get_blob_client(container_name, "b.png").delete_blob()  # someone else did

    await cleanup.process(items["a.png"])
    await cleanup.process(items["b.png"])  # no error
    await cleanup.process(items["a.png"])  # twice: still no error (at-least-once delivery)

    assert await names_in(blob_service, container_name) == set()


async def test_a_blob_rewritten_after_listing_is_kept(
    blob_service: BlobServiceClient, blob_store: BlobStore, container_name: str
) -> None:
    created = await upload(blob_service, container_name, ["photo.png"])
    cleanup = handler(blob_store, container_name, clock_past_max_age(created))
    [item] = await cleanup.fetch_work_items(10)
    await upload(blob_service, container_name, ["photo.png"])  # new content, new ETag

    await cleanup.process(item)

    assert await names_in(blob_service, container_name) == {"photo.png"}


async def test_item_ids_are_stable_per_container_and_name(
    blob_service: BlobServiceClient, blob_store: BlobStore, container_name: str
) -> None:
    created = await upload(blob_service, container_name, ["same.png"])
    clock = clock_past_max_age(created)
    [first] = await handler(blob_store, container_name, clock).fetch_work_items(10)
    [again] = await handler(blob_store, container_name, clock).fetch_work_items(10)
    assert isinstance(first, ExpiredBlob)
    assert first.id == again.id


async def test_a_missing_container_is_one_warning_not_an_error_every_cycle(
    blob_store: BlobStore, container_name: str, captured_logs: list[str]
) -> None:
    cleanup = handler(blob_store, container_name, FakeClock(datetime.now(UTC)))

    for _ in range(3):
        assert await cleanup.fetch_work_items(10) == []

    warnings = [line for line in captured_logs if "does not exist" in line]
    assert len(warnings) == 1
    assert container_name in warnings[0] and "WARNING" in warnings[0]


async def test_storage_that_does_not_answer_is_one_warning_then_recovers(
    azurite_offline_store: BlobStore, container_name: str, captured_logs: list[str]
) -> None:
    cleanup = handler(azurite_offline_store, container_name, FakeClock(datetime.now(UTC)))

    for _ in range(2):
        assert await cleanup.fetch_work_items(10) == []

    warnings = [line for line in captured_logs if "is not reachable" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0]
    assert DEV_ACCOUNT_KEY not in "\n".join(captured_logs)


@pytest.fixture(scope="module")
def strict_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite started as the docs say (no --skipApiVersionCheck): it refuses the SDK's version."""
    emulator = Azurite.start(tmp_path_factory.mktemp("strict"), skip_api_version_check=False)
    yield emulator
    emulator.stop()


async def wait_for_the_next_second() -> None:
    """The service records times in whole seconds: what happens next is in a later second."""
    await asyncio.sleep(1.1 - datetime.now(UTC).microsecond / 1_000_000 % 1)


async def test_a_blob_rewritten_since_the_cutoff_is_kept_however_old_its_creation(
    blob_service: BlobServiceClient, blob_store: BlobStore, container_name: str
) -> None:
    await upload(blob_service, container_name, ["rewritten.png", "untouched.png"])
    await wait_for_the_next_second()
    rewritten = blob_service.get_blob_client(container_name, "rewritten.png")
    await rewritten.set_blob_metadata({"edited": "yes"})  # a write that keeps the creation time
    properties = await rewritten.get_blob_properties()
    assert properties.creation_time < properties.last_modified
    clock = FakeClock(properties.last_modified.astimezone(UTC) + MAX_AGE)  # cutoff = that write
    cleanup = handler(blob_store, container_name, clock)

    assert [item.name for item in await cleanup.fetch_work_items(10)] == ["untouched.png"]

    clock.advance(timedelta(seconds=1))
    assert len(await cleanup.fetch_work_items(10)) == 2


async def test_a_blob_with_a_snapshot_taken_since_the_cutoff_is_kept_with_it(
    blob_service: BlobServiceClient, blob_store: BlobStore, container_name: str
) -> None:
    await upload(blob_service, container_name, ["snapped.png", "plain.png"])
    snapped = blob_service.get_blob_client(container_name, "snapped.png")
    await snapped.create_snapshot()  # an old snapshot: does not keep the blob
    await wait_for_the_next_second()
    young = await snapped.create_snapshot()
    young_at = datetime.fromisoformat(young["snapshot"])
    clock = FakeClock(young_at + MAX_AGE)  # cutoff = the young snapshot's time
    cleanup = handler(blob_store, container_name, clock)

    assert [item.name for item in await cleanup.fetch_work_items(10)] == ["plain.png"]

    clock.advance(timedelta(seconds=1))  # now every snapshot is older than the cutoff
    items = await cleanup.fetch_work_items(10)
    assert sorted(item.name for item in items) == ["plain.png", "snapped.png"]
    for item in items:
        await cleanup.process(item)
    listing = blob_service.get_container_client(container_name).list_blobs(include=["snapshots"])
    assert [blob async for blob in listing] == []  # the blob went with its snapshots


async def test_blobs_that_cannot_be_deleted_are_warned_once_and_do_not_hold_the_cleanup_back(
    blob_service: BlobServiceClient,
    blob_store: BlobStore,
    container_name: str,
    captured_logs: list[str],
) -> None:
    # Leased blobs come first in name order: a cleanup that picked them every cycle would
    # never reach the others with MaxItemsPerCycle = 2.
    leased, others = ["a-leased.png", "b-leased.png"], ["c.png", "d.png", "e.png"]
    created = await upload(blob_service, container_name, leased + others)
    leases = [
        await blob_service.get_blob_client(container_name, name).acquire_lease(lease_duration=-1)
        for name in leased
    ]
    clock = clock_past_max_age(created)
    registration = HandlerRegistration(
        lambda: handler(blob_store, container_name, clock),
        name="BlobCleanup",
        max_items_per_cycle=2,
    )
    engine = WorkItemProcessingEngine([registration], max_concurrency=2)

    reports = [await engine.run_cycle() for _ in range(4)]

    assert [(r.succeeded, r.failed) for r in reports] == [(2, 0), (2, 0), (1, 0), (0, 0)]
    assert await names_in(blob_service, container_name) == set(leased)
    warnings = [line for line in captured_logs if "cannot be deleted" in line]
    assert len(warnings) == 2 and all("WARNING" in line for line in warnings)
    assert all("HTTP 412 LeaseIdMissing" in line for line in warnings)
    assert not [line for line in captured_logs if "ERROR" in line]

    for lease in leases:  # the leases end; once MaxAge has passed again, they are retried
        await lease.break_lease(lease_break_period=0)
    clock.advance(MAX_AGE)
    assert (await engine.run_cycle()).succeeded == 0  # still within MaxAge of the refusal
    clock.advance(timedelta(seconds=1))
    assert (await engine.run_cycle()).succeeded == 2

    assert await names_in(blob_service, container_name) == set()


def test_the_memory_of_undeletable_blobs_is_bounded() -> None:
    clock = FakeClock()
    memory = UndeletableBlobs(max_remembered=2)
    blobs = [BlobInfo("c", f"b{i}", clock(), clock(), "etag") for i in range(3)]
    for blob in blobs:
        memory.remember(blob, refused_at=clock())
        clock.advance(timedelta(seconds=1))

    before = clock() - timedelta(hours=1)
    assert len(memory) == 2
    assert [memory.holds(blob, before) for blob in blobs] == [False, True, True]
    assert not memory.holds(blobs[1], clock())  # refused before the cutoff: forgotten
    assert len(memory) == 1


async def test_storage_that_refuses_to_list_is_one_warning_naming_status_and_code(
    strict_azurite: Azurite, container_name: str, captured_logs: list[str]
) -> None:
    async with BlobStore.from_connection_string(strict_azurite.connection_string) as store:
        cleanup = handler(store, container_name, FakeClock(datetime.now(UTC)))

        for _ in range(3):
            assert await cleanup.fetch_work_items(10) == []

    warnings = [line for line in captured_logs if "failed (HTTP" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0]
    assert "HTTP 400 InvalidHeaderValue" in warnings[0] and container_name in warnings[0]
    assert DEV_ACCOUNT_KEY not in "\n".join(captured_logs)
