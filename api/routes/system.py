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
from ..context import ApiContext, get_ctx
from ..metrics import agent_gauges, cluster_gauges
from ..service import queries
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
    """Prometheus text: API requests, cluster gauges and engine/agent metrics."""
    lines = list(ctx.metrics.render())
    if ctx.systemd is not None:
        lines.extend(agent_gauges(ctx.systemd()))
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
