"""Prometheus exposition of one API app, in its own prometheus-client CollectorRegistry.

A scrape shows:

- HTTP requests, counted by ``RequestCounter``: a counter and a latency
  histogram by method, route template (``/fleet/v1/units/{name}``, never the
  raw path, so the label set is bounded) and status code;
- this process: prometheus-client's process, platform and GC collectors;
- this machine's agent and this process's engine (collectors.py), read from
  their objects at scrape time;
- cluster-wide gauges (census.py), passed to ``render`` per scrape.

Each app has its own registry rather than prometheus-client's global one, so
that several apps in one process (tests) count separately.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OTHER_ROUTE = "other"
"""The route label of a request that matched no route (a 404 for an unknown path)."""

# A ``_created`` sample per label set would double every request series; nothing
# here uses them (Prometheus sees counter resets by itself).
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """One app's collector registry: request metrics, process metrics, added collectors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        labels = ("method", "route", "code")
        self._requests = Counter(
            "fleetd_api_requests",
            "API requests by method, route template and status code.",
            labels,
            registry=self.registry,
        )
        self._durations = Histogram(
            "fleetd_api_request_duration_seconds",
            "Time to answer an API request, by method, route template and status code.",
            labels,
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._writes = Counter(
            "fleetd_api_writes",
            "Audited writes by caller, method, route template and status code.",
            ("caller", *labels),
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        code = str(status)
        self._requests.labels(method, route, code).inc()
        self._durations.labels(method, route, code).observe(seconds)

    def write(self, caller: str, method: str, route: str, status: int) -> None:
        """One audited write (api/audit.py)."""
        self._writes.labels(caller, method, route, str(status)).inc()

    def add(self, collector: Collector) -> None:
        """Collect from ``collector`` at every scrape (an agent's, an engine's)."""
        self.registry.register(collector)

    def render(self, extra: Sequence[Metric] = ()) -> bytes:
        """The text exposition (format 0.0.4) of the registry, then ``extra``."""
        return generate_latest(_Joined(self.registry, extra))


class _Joined:
    """A registry's metrics followed by families made for one scrape."""

    def __init__(self, registry: CollectorRegistry, extra: Sequence[Metric]) -> None:
        self._registry = registry
        self._extra = extra

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()
        yield from self._extra


class RequestCounter:
    """ASGI wrapper that records each HTTP request in ``metrics`` under its route template."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, templates: Callable[[], Iterable[str]]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self._templates = templates
        self._patterns: list[tuple[re.Pattern[str], str]] | None = None

    def route_of(self, path: str) -> str:
        """The route template (``/fleet/v1/units/{name}``) a request path matched."""
        if self._patterns is None:
            self._patterns = [
                (re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(t)) + r"\Z"), t)
                for t in self._templates()
            ]
        for pattern, template in self._patterns:
            if pattern.match(path):
                return template
        return OTHER_ROUTE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = self.route_of(scope["path"])
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)
