"""``/healthz``, ``/metrics`` and fleet's ``/discovery`` document."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse

from fleetd.errors import FleetError

from .. import wire
from ..collectors import cluster_families
from ..context import ApiContext, get_ctx
from ..metrics import CONTENT_TYPE
from ..service.discovery import discovery_document

log = logging.getLogger(__name__)
root = APIRouter(tags=["operations"])
fleet = APIRouter(tags=["discovery"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
HEALTH_TIMEOUT = 3.0


@root.get(
    "/healthz",
    response_model=wire.Health,
    response_model_exclude_none=True,
    responses={
        503: {
            "model": wire.Health,
            "description": "registry unreachable, or this machine's agent cannot reach systemd",
        }
    },
)
async def healthz(ctx: Ctx) -> JSONResponse:
    """200 when the registry answers and this machine's agent reaches systemd, else 503
    with the reason; names this machine and the engine leader."""
    reasons = []
    systemd: Literal["ok", "unavailable"] | None = None
    if ctx.systemd is not None:
        link = ctx.systemd()
        systemd = "ok" if link.connected else "unavailable"
        if not link.connected:
            since = datetime.fromtimestamp(link.since, UTC).isoformat(timespec="seconds")
            reasons.append(f"agent cannot reach systemd since {since}: {link.reason}")
    leader = None
    try:
        leader = await asyncio.wait_for(ctx.store.current_leader(), HEALTH_TIMEOUT)
        registry: Literal["ok", "unavailable"] = "ok"
    except (FleetError, TimeoutError) as exc:
        log.warning("health check: registry unavailable: %s", exc)
        registry = "unavailable"
        why = str(exc) or f"no answer within {HEALTH_TIMEOUT:g}s"
        reasons.append(f"registry unavailable: {why}")
    body = wire.Health(
        status="degraded" if reasons else "ok",
        machineID=ctx.machine_id,
        leader=leader.machine if leader else None,
        registry=registry,
        systemd=systemd,
        reason="; ".join(reasons) or None,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=503 if reasons else 200)


@root.get("/metrics", response_class=PlainTextResponse)
async def metrics(ctx: Ctx) -> PlainTextResponse:
    """Prometheus text: API requests, this process, this machine's agent, this process's
    engine and cluster gauges (counted without reading the whole registry each time)."""
    try:
        await asyncio.wait_for(ctx.store.current_leader(), HEALTH_TIMEOUT)
        up = True
    except (FleetError, TimeoutError) as exc:
        log.warning("metrics: registry unavailable: %s", exc)
        up = False
    try:
        counts = await ctx.census.counts(may_read=up)
    except FleetError as exc:
        log.warning("metrics: cannot count the cluster: %s", exc)
        counts = None
    body = ctx.metrics.render(cluster_families(counts, up))
    return PlainTextResponse(body, media_type=CONTENT_TYPE)


@fleet.get("/discovery")
async def discovery() -> dict[str, Any]:
    """fleet's capability discovery document (Google discovery format) for the v1 API."""
    return discovery_document()
