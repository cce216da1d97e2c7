"""The metrics endpoint, scraped over HTTP on loopback while an engine runs: queued and
in-flight gauges as they are, items and durations per handler and outcome."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from myapp.processing import ConfigurationError, WorkItemProcessingEngine
from myapp.processing.observers import NoObserver, Outcome, combine
from myapp.processing.prometheus_metrics import MetricsEndpoint, PrometheusMetrics
from tests.unit.support import HandlerState, Item, items_for, registration

GUARD_S = 30
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(endpoint: MetricsEndpoint) -> Samples:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"http://127.0.0.1:{endpoint.port}/metrics")
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


class Finished(NoObserver):
    def __init__(self, count: int) -> None:
        self.left = count
        self.all_three = asyncio.Event()

    def item_finished(self, handler: str, outcome: Outcome, duration_s: float | None) -> None:
        self.left -= 1
        if not self.left:
            self.all_three.set()


async def test_a_scrape_shows_what_runs_what_waits_and_what_finished() -> None:
    release, started = asyncio.Event(), asyncio.Event()

    async def hold(item: Item) -> None:
        started.set()
        await release.wait()
        if item.index == 1:
            raise ValueError("bad item")

    state = HandlerState("Slow", items_for("Slow", 3), process_hook=hold)
    idle = HandlerState("Idle")
    metrics, finished = PrometheusMetrics(), Finished(3)
    engine = WorkItemProcessingEngine(
        [registration(state, max_concurrency=1), registration(idle)],
        observer=combine([metrics, finished]),
    )
    metrics.watch(engine)
    endpoint = MetricsEndpoint(metrics, port=0)
    await endpoint.start()
    try:
        async with asyncio.timeout(GUARD_S):
            run = asyncio.create_task(engine.run_continuously(timedelta(hours=1)))
            await started.wait()
            during = await scrape(endpoint)
            release.set()
            await finished.all_three.wait()
            engine.request_stop()
            await run
            after = await scrape(endpoint)
    finally:
        await endpoint.stop()

    assert value(during, "myapp_items_in_flight", handler="Slow") == 1  # its cap
    assert value(during, "myapp_items_queued", handler="Slow") == 2
    assert value(during, "myapp_items_total", handler="Idle", outcome="succeeded") == 0
    assert value(during, "myapp_fetch_errors_total", handler="Idle") == 0
    assert value(after, "myapp_items_total", handler="Slow", outcome="succeeded") == 2
    assert value(after, "myapp_items_total", handler="Slow", outcome="dead_lettered") == 0
    assert value(after, "myapp_item_duration_seconds_count", handler="Slow") == 2
    assert value(after, "myapp_fetch_duration_seconds_count", handler="Slow") >= 1  # type: ignore[operator]
    assert value(after, "myapp_items_queued", handler="Slow") is None  # no run: no gauge


async def test_a_port_in_use_is_a_configuration_error_naming_the_key() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint = MetricsEndpoint(PrometheusMetrics(), port=taken.getsockname()[1])
        with pytest.raises(ConfigurationError) as raised:
            await endpoint.start()
    assert raised.value.key == "Metrics:Port"


async def test_stop_closes_the_port() -> None:
    endpoint = MetricsEndpoint(PrometheusMetrics(), port=0)
    await endpoint.start()
    await endpoint.stop()

    with pytest.raises(httpx.ConnectError):
        await scrape(endpoint)
