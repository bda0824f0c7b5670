"""Prometheus text exposition: API request counters and cluster gauges.

Request metrics are counted by an ASGI wrapper (``RequestCounter``) per
method, route template and status.  Cluster gauges are read from the
registry at scrape time; agent gauges from this machine's agent.  Other parts
of fleetd (engine, agent) add their own text through ``ApiContext.extra_metrics``.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetd import model

from .service import views

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels(**pairs: str) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(pairs.items())) + "}"


@dataclass
class ApiMetrics:
    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(_BUCKETS))
    duration_sum: float = 0.0
    duration_count: int = 0
    writes: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, str(status))] += 1
        self.duration_sum += seconds
        self.duration_count += 1
        for i, bound in enumerate(_BUCKETS):
            if seconds <= bound:
                self.bucket_counts[i] += 1

    def write(self, caller: str, method: str, route: str, status: int) -> None:
        """One audited write (api/audit.py)."""
        self.writes[(caller, method, route, str(status))] += 1

    def render(self) -> Iterable[str]:
        yield "# HELP fleetd_api_requests_total API requests by method, route and status."
        yield "# TYPE fleetd_api_requests_total counter"
        for (method, route, status), count in sorted(self.requests.items()):
            yield (
                "fleetd_api_requests_total"
                f"{labels(method=method, route=route, code=status)} {count}"
            )
        yield "# HELP fleetd_api_request_duration_seconds Time to answer an API request."
        yield "# TYPE fleetd_api_request_duration_seconds histogram"
        for bound, count in zip(_BUCKETS, self.bucket_counts, strict=True):
            yield f'fleetd_api_request_duration_seconds_bucket{{le="{bound}"}} {count}'
        yield f'fleetd_api_request_duration_seconds_bucket{{le="+Inf"}} {self.duration_count}'
        yield f"fleetd_api_request_duration_seconds_sum {self.duration_sum:.6f}"
        yield f"fleetd_api_request_duration_seconds_count {self.duration_count}"
        yield "# HELP fleetd_api_writes_total Audited writes by caller, method, route and status."
        yield "# TYPE fleetd_api_writes_total counter"
        for (caller, method, route, status), count in sorted(self.writes.items()):
            yield (
                "fleetd_api_writes_total"
                f"{labels(caller=caller, method=method, route=route, code=status)} {count}"
            )


def cluster_gauges(snap: views.Snapshot) -> Iterable[str]:
    by_desired = Counter(u.desired.value for u in snap.units)
    yield "# HELP fleetd_units Submitted units by desired state."
    yield "# TYPE fleetd_units gauge"
    for state in model.DesiredState:
        yield f"fleetd_units{labels(desired=state.value)} {by_desired.get(state.value, 0)}"
    active = Counter(s.active_state for s in snap.states)
    yield "# HELP fleetd_unit_states Unit copies reported by agents, by systemd ActiveState."
    yield "# TYPE fleetd_unit_states gauge"
    for state_name, count in sorted(active.items()):
        yield f"fleetd_unit_states{labels(active=state_name)} {count}"
    yield "# HELP fleetd_machines Machines present in the cluster."
    yield "# TYPE fleetd_machines gauge"
    yield f"fleetd_machines {len(snap.machines)}"
    cordoned = sum(1 for f in snap.flags.values() if f.unschedulable or f.draining)
    yield "# HELP fleetd_machines_unschedulable Machines cordoned or draining."
    yield "# TYPE fleetd_machines_unschedulable gauge"
    yield f"fleetd_machines_unschedulable {cordoned}"
    cut_off = sum(1 for m in snap.machines if not m.systemd_connected)
    yield "# HELP fleetd_machines_systemd_unreachable Machines whose agent cannot reach systemd."
    yield "# TYPE fleetd_machines_systemd_unreachable gauge"
    yield f"fleetd_machines_systemd_unreachable {cut_off}"
    yield "# HELP fleetd_units_unplaceable Units the engine could not place."
    yield "# TYPE fleetd_units_unplaceable gauge"
    yield f"fleetd_units_unplaceable {len(snap.placements)}"
    yield "# HELP fleetd_scheduled_units Schedule entries (unit copies assigned to machines)."
    yield "# TYPE fleetd_scheduled_units gauge"
    yield f"fleetd_scheduled_units {len(snap.schedule)}"


def agent_gauges(link: model.SystemdLink) -> Iterable[str]:
    """This machine's agent, as it sees itself now."""
    yield "# HELP fleetd_agent_systemd_connected Whether this machine's agent reaches systemd."
    yield "# TYPE fleetd_agent_systemd_connected gauge"
    yield f"fleetd_agent_systemd_connected {int(link.connected)}"


class RequestCounter:
    """ASGI wrapper that records each HTTP request in ``metrics`` under its route template."""

    def __init__(
        self, app: ASGIApp, metrics: ApiMetrics, templates: Callable[[], Iterable[str]]
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
        return "other"

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


def render_fields(prefix: str, values: object, help_text: str = "") -> str:
    """Prometheus text for the numeric fields of a dataclass (e.g. the engine's metrics).

    ``fleetd_engine`` + field ``placements`` -> ``fleetd_engine_placements``;
    fields ending in ``_total`` are counters, the others gauges; non-numeric
    fields are skipped.  For ``ApiContext.extra_metrics``.
    """
    if not dataclasses.is_dataclass(values) or isinstance(values, type):
        raise TypeError("render_fields needs a dataclass instance")
    lines = []
    for f in dataclasses.fields(values):
        value = getattr(values, f.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        name = f"{prefix}_{f.name}"
        kind = "counter" if f.name.endswith("_total") else "gauge"
        lines.append(f"# HELP {name} {help_text or prefix.replace('_', ' ')}: {f.name}")
        lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name} {value}")
    return "\n".join(lines) + ("\n" if lines else "")
