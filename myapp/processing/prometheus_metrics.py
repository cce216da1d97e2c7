"""Prometheus metrics of a worker, served over HTTP (`Metrics:Port`; off by default).

`PrometheusMetrics` is a processing observer: counters and histograms are updated as items
finish and fetches return; the queued and in-flight gauges are read from the engine when
Prometheus scrapes. Its own registry (not prometheus-client's global one), so two engines in one
process (tests) never share series. `MetricsEndpoint` is the hosted service serving it
(prometheus-client's HTTP server, in a thread of its own).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from myapp.processing.engine import WorkItemProcessingEngine
from myapp.processing.errors import ConfigurationError
from myapp.processing.observers import Outcome

DEFAULT_METRICS_HOST = "127.0.0.1"
# Item and claim durations: from a no-op item (~100 us) to a long scrape (minutes).
DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


class PrometheusMetrics:
    """The worker's metrics: an observer of its engine, and the collector of its gauges."""

    def __init__(self, engine: WorkItemProcessingEngine | None = None) -> None:
        self.registry = CollectorRegistry()
        self._engine = engine
        self.items = Counter(
            "myapp_items",
            "Work items finished, by handler and outcome (succeeded, failed, dead_lettered).",
            ["handler", "outcome"],
            registry=self.registry,
        )
        self.item_duration = Histogram(
            "myapp_item_duration_seconds",
            "Processing time of work items that succeeded, by handler.",
            ["handler"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.fetch_errors = Counter(
            "myapp_fetch_errors",
            "Fetches (claims) that raised or timed out, by handler.",
            ["handler"],
            registry=self.registry,
        )
        self.fetch_duration = Histogram(
            "myapp_fetch_duration_seconds",
            "Time a fetch (a claim, for a claiming handler) took, by handler.",
            ["handler"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_EngineLoad(self))
        # labels() takes a lock and hashes its labels: each series is looked up once.
        self._item_series: dict[tuple[str, Outcome], Any] = {}
        self._duration_series: dict[str, Any] = {}

    def watch(self, engine: WorkItemProcessingEngine) -> None:
        """The engine whose queued and in-flight items the gauges show."""
        self._engine = engine
        for registration in engine.registrations:  # every handler's series exist from the start
            for outcome in Outcome:
                self.items.labels(registration.name, outcome.value)
            self.fetch_errors.labels(registration.name)

    def item_finished(self, handler: str, outcome: Outcome, duration_s: float | None) -> None:
        series = self._item_series.get((handler, outcome))
        if series is None:
            series = self._item_series[handler, outcome] = self.items.labels(handler, outcome)
        series.inc()
        if duration_s is not None:
            duration = self._duration_series.get(handler)
            if duration is None:
                duration = self._duration_series[handler] = self.item_duration.labels(handler)
            duration.observe(duration_s)

    def fetched(self, handler: str, count: int, seconds: float) -> None:
        self.fetch_duration.labels(handler).observe(seconds)

    def fetch_failed(self, handler: str) -> None:
        self.fetch_errors.labels(handler).inc()

    def load(self) -> dict[str, tuple[int, int]]:
        return {} if self._engine is None else self._engine.load()


class _EngineLoad(Collector):
    """The gauges, read when scraped: items queued in the worker and items being processed."""

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queued = GaugeMetricFamily(
            "myapp_items_queued",
            "Items fetched and waiting for a slot, by handler.",
            labels=["handler"],
        )
        in_flight = GaugeMetricFamily(
            "myapp_items_in_flight", "Items being processed now, by handler.", labels=["handler"]
        )
        for handler, (waiting, running) in self._metrics.load().items():
            queued.add_metric([handler], waiting)
            in_flight.add_metric([handler], running)
        yield queued
        yield in_flight


class MetricsEndpoint:
    """The hosted service serving `metrics` at http://host:port/metrics (port 0: any free one,
    `port` says which once started)."""

    def __init__(self, metrics: PrometheusMetrics, *, port: int, host: str = DEFAULT_METRICS_HOST):
        self.metrics = metrics
        self.host = host
        self.port = port
        self._server: Any = None

    async def start(self) -> None:
        try:
            self._server, _ = start_http_server(self.port, self.host, self.metrics.registry)
        except OSError as error:  # in use, or an address this machine does not have
            where = f"{self.host}:{self.port}"
            raise ConfigurationError("Metrics:Port", where, f"a free port ({error})") from None
        self.port = self._server.server_port
        logger.info("Prometheus metrics at http://{}:{}/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
