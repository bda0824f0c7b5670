"""What every route handler needs, attached to the app as ``app.state.ctx``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request

from fleetd.engine.mirrors import Parsed
from fleetd.engine.settings import EngineSettings
from fleetd.model import SystemdLink
from fleetd.registry.store import Store
from fleetd.requirements import ReservationDefaults

from .census import Census
from .metrics import Metrics
from .service.inspector import UnitInspector
from .service.pagination import DEFAULT_PAGE_SIZE
from .service.peers import Peers


@dataclass
class ApiContext:
    store: Store
    census: Census  # cluster-wide counts for /metrics
    machine_id: str | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    defaults: ReservationDefaults = field(default_factory=ReservationDefaults)
    inspector: UnitInspector | None = None
    peers: Peers = field(default_factory=Peers)
    metrics: Metrics = field(default_factory=Metrics)
    # This machine's agent's connection to systemd now (None: no agent in this process).
    systemd: Callable[[], SystemdLink] | None = None
    # Wall-clock seconds: the time unit versions record.
    clock: Callable[[], float] = time.time
    # The engine's scheduling settings (strategy, reservation defaults, AtMostOnce grace),
    # as this fleetd's engine would plan with them: what POST /plan plans with.
    scheduling: EngineSettings = field(default_factory=EngineSettings)
    # Unit files parsed by POST /plan, kept between requests as the engine keeps them.
    parsed: Parsed = field(default_factory=dict)


async def get_ctx(request: Request) -> ApiContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, ApiContext)
    return ctx
