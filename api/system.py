"""``/healthz``, ``/metrics`` and fleet's ``/discovery`` document."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse

from fleetd.errors import FleetError

from . import models, queries
from .context import ApiContext, get_ctx
from .discovery import discovery_document
from .metrics import cluster_gauges

log = logging.getLogger(__name__)
root = APIRouter(tags=["operations"])
fleet = APIRouter(tags=["discovery"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
HEALTH_TIMEOUT = 3.0


@root.get(
    "/healthz",
    response_model=models.Health,
    response_model_exclude_none=True,
    responses={503: {"model": models.Health, "description": "registry unreachable"}},
)
async def healthz(ctx: Ctx) -> JSONResponse:
    """200 when the registry answers, else 503; names this machine and the engine leader."""
    try:
        leader = await asyncio.wait_for(ctx.store.current_leader(), HEALTH_TIMEOUT)
    except (FleetError, TimeoutError) as exc:
        log.warning("health check: registry unavailable: %s", exc)
        body = models.Health(status="degraded", machineID=ctx.machine_id, registry="unavailable")
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)
    body = models.Health(
        status="ok",
        machineID=ctx.machine_id,
        leader=leader.machine if leader else None,
        registry="ok",
    )
    return JSONResponse(body.model_dump(exclude_none=True))


@root.get("/metrics", response_class=PlainTextResponse)
async def metrics(ctx: Ctx) -> PlainTextResponse:
    """Prometheus text: API requests, cluster gauges and engine/agent metrics."""
    lines = list(ctx.metrics.render())
    try:
        snap = await queries.snapshot(
            ctx.store,
            units=True,
            schedule=True,
            states=True,
            machines=True,
            flags=True,
            placements=True,
        )
        lines.extend(cluster_gauges(snap))
        up = 1
    except FleetError as exc:
        log.warning("metrics: registry unavailable: %s", exc)
        up = 0
    lines.append("# HELP fleetd_registry_up Whether the registry answered this scrape.")
    lines.append("# TYPE fleetd_registry_up gauge")
    lines.append(f"fleetd_registry_up {up}")
    for extra in ctx.extra_metrics:
        text = extra().rstrip("\n")
        if text:
            lines.append(text)
    return PlainTextResponse(
        "\n".join(lines) + "\n", media_type="text/plain; version=0.0.4; charset=utf-8"
    )


@fleet.get("/discovery")
async def discovery() -> dict[str, Any]:
    """fleet's capability discovery document (Google discovery format) for the v1 API."""
    return discovery_document()
