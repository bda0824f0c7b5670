"""The FastAPI application: fleet's v1 API at ``/fleet/v1`` plus fleetd's extensions.

``create_app`` builds it over a Store; serve.py puts it on a unix socket and,
wrapped in ``BearerAuth``, on TCP.  OpenAPI is at ``/openapi.json``, docs at ``/docs``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI

from fleetd import __version__
from fleetd.engine.settings import EngineSettings
from fleetd.model import SystemdLink
from fleetd.registry.store import Store
from fleetd.requirements import ReservationDefaults

from . import docs
from .access import Authorize
from .audit import Audit, AuditLog
from .census import CLUSTER_TTL, Census
from .collectors import AgentCollector, AgentReading, EngineCollector, EngineView
from .context import ApiContext
from .errors import install_error_handlers
from .guards import MAX_BODY, RequestGuards
from .metrics import RequestCounter
from .routes import (
    bulk,
    cluster,
    config,
    events,
    journal,
    machines,
    maintenance,
    plan,
    rollouts,
    state,
    system,
    ui,
    units,
    versions,
)
from .service.inspector import UnitInspector
from .service.pagination import DEFAULT_PAGE_SIZE
from .service.peers import Peers

PREFIX = "/fleet/v1"

DESCRIPTION = """\
fleet's v1 API (`/fleet/v1`: units, state, machines, discovery), wire-compatible
with fleet's clients, including the original Go `fleetctl --endpoint`.

Errors are `{"error": {"code": N, "message": "..."}}`. Listings are paged:
pass a response's `nextPageToken` back as the `nextPageToken` query parameter.

**Extensions** (fleet's clients ignore them): `hash` and `reason` on units,
capacity/allocation/flags on machines, `PUT /units` (many unit changes at once),
`/units/{name}/placement`,
`/units/{name}/versions` (the last 20 versions of a unit's file, who wrote them and
what changed), `/rollouts` (rolling updates driven by the engine), `/maintenance`
(machines rebooted or updated without interrupting the services), `/placements`,
`POST /plan` (what unit changes would do, writing nothing), cordon/uncordon/drain
of machines, `/units/{name}/status` and `/journal` (served by the unit's machine, no
SSH), `/events` (server-sent events), `/cluster` (everything a live view shows, in
one answer), `/metrics` (Prometheus) and `/healthz`.  A web dashboard is served at
`/ui/`.

On TCP every request needs `Authorization: Bearer <token>` (this page and
`/openapi.json` excepted), of a token whose role allows the route: `read`
(every GET, and `POST /plan`), `operate` (desired states, cordon/uncordon/drain,
`PUT /units...` without a unit file) or `admin` (also unit files and machine metadata).
A missing or invalid token is a 401, a role too low a 403 naming the role needed.
"""


def create_app(
    store: Store,
    *,
    machine_id: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    defaults: ReservationDefaults | None = None,
    inspector: UnitInspector | None = None,
    peers: Peers | None = None,
    systemd: Callable[[], SystemdLink] | None = None,
    agent: Callable[[], AgentReading] | None = None,
    engine: EngineView | None = None,
    cluster_ttl: float = CLUSTER_TTL,
    max_body: int = MAX_BODY,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    scheduling: EngineSettings | None = None,
) -> FastAPI:
    """The API over ``store``.

    ``machine_id``/``inspector``: this machine and how to inspect its units
    (None on a fleetd without an agent); ``peers``: how to reach other
    machines' APIs for status/journal; ``systemd``: this machine's agent's
    connection to systemd, for ``/healthz`` and ``/metrics`` (None: no agent here);
    ``agent``/``engine``: what ``/metrics`` shows of this machine's agent and this
    process's engine (fleetd/readings.py); ``cluster_ttl``: how long a registry read
    of the cluster serves ``/metrics`` where the engine does not lead (census.py);
    ``clock``: wall-clock seconds, the time unit versions record; ``monotonic``: the
    clock of ``cluster_ttl``; ``scheduling``: the engine settings ``POST /plan`` plans
    with (the engine's defaults if None).
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    app = FastAPI(
        title="fleetd API",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_tags=[
            {"name": "units", "description": "fleet v1 units (and extensions)"},
            {"name": "state", "description": "fleet v1 unit states"},
            {"name": "machines", "description": "fleet v1 machines (and extensions)"},
            {"name": "rollouts", "description": "extension: rolling updates"},
            {"name": "maintenance", "description": "extension: maintenance of machines"},
            {"name": "events", "description": "extension: server-sent events"},
            {"name": "cluster", "description": "extension: the whole cluster, for live views"},
            {"name": "operations", "description": "health and metrics"},
        ],
    )
    ctx = ApiContext(
        store=store,
        census=Census(store, engine=engine, ttl=cluster_ttl, clock=monotonic),
        machine_id=machine_id,
        page_size=page_size,
        defaults=defaults or ReservationDefaults(),
        inspector=inspector,
        peers=peers or Peers(),
        systemd=systemd,
        clock=clock,
        scheduling=scheduling or EngineSettings(defaults=defaults or ReservationDefaults()),
    )
    app.state.ctx = ctx
    ctx.metrics.add(AgentCollector(systemd, agent))
    if engine is not None:
        ctx.metrics.add(EngineCollector(engine))
    install_error_handlers(app)
    docs.install(app)
    for router in (
        units.router,
        versions.router,
        rollouts.router,
        maintenance.router,
        bulk.router,
        plan.router,
        journal.router,
        state.router,
        machines.router,
        events.router,
        cluster.router,
        config.router,
    ):
        app.include_router(router, prefix=PREFIX)
    app.include_router(system.fleet, prefix=PREFIX)
    app.include_router(system.root)
    app.include_router(ui.router)
    app.state.audit = AuditLog(ctx.metrics)
    # Outermost last: count, audit, authorize, then guard the body.
    app.add_middleware(RequestGuards, max_body=max_body)
    app.add_middleware(Authorize, max_body=max_body)
    app.add_middleware(Audit, audit=app.state.audit)
    app.add_middleware(
        RequestCounter, metrics=ctx.metrics, templates=lambda: list(app.openapi()["paths"])
    )
    return app


def routes_of(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route: the API's from its OpenAPI description,
    the others (docs pages, the dashboard's files) from the app's own routes."""
    found = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    ]
    found.extend(_routes_in(app.routes, ""))
    return found


def _routes_in(routes: Sequence[Any], prefix: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in routes:
        # FastAPI >= 0.160 keeps an included router whole, with its prefix beside it.
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            found.extend(_routes_in(included.routes, prefix + getattr(context, "prefix", "")))
            continue
        methods = getattr(route, "methods", None)
        path = getattr(route, "path", None)
        if methods and path:
            found.extend((method, prefix + path) for method in methods)
    return found
