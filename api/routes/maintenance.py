"""Extension: maintenance of machines (``/maintenance``) and reboot requests, driven by the
engine leader (docs/maintenance.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from fleetd.caller import Caller

from .. import wire
from ..auth import caller_of
from ..context import ApiContext, get_ctx
from ..service import maintenance

router = APIRouter(tags=["maintenance"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
Who = Annotated[Caller, Depends(caller_of)]


@router.post(
    "/maintenance",
    status_code=201,
    response_model=wire.Maintenance,
    responses={
        400: {
            "model": wire.ErrorResponse,
            "description": "no machines (or both machines and all), a machine named twice, "
            "maxUnavailable below 1, an empty or malformed command",
        },
        404: {"model": wire.ErrorResponse, "description": "a machine is not registered"},
        409: {"model": wire.ErrorResponse, "description": "another maintenance is active"},
        413: {"model": wire.ErrorResponse, "description": "body over 1 MiB"},
        415: {"model": wire.ErrorResponse, "description": "not application/json"},
    },
)
async def start(ctx: Ctx, caller: Who, body: wire.MaintenanceRequest) -> wire.Maintenance:
    """Extension: take machines down ``maxUnavailable`` at a time without interrupting the
    services: for each, cordon, drain (start-first), reboot it (or run ``command`` there,
    without a shell), wait until it is back, uncordon, and let its units come back.
    Nothing is written when it is refused."""
    record = await maintenance.start_maintenance(
        ctx.store,
        body.machines,
        all_machines=body.all,
        max_unavailable=body.maxUnavailable,
        command=body.command,
        caller=caller,
        clock=ctx.clock,
    )
    return maintenance.view(record)


@router.get(
    "/maintenance",
    response_model=wire.Maintenance,
    responses={404: {"model": wire.ErrorResponse, "description": "none was ever started"}},
)
async def current(ctx: Ctx) -> wire.Maintenance:
    """Extension: the current maintenance, or the last one, with every machine's progress."""
    return maintenance.view(await maintenance.get_maintenance(ctx.store))


@router.post(
    "/maintenance/cancel",
    response_model=wire.Maintenance,
    responses={
        404: {"model": wire.ErrorResponse, "description": "none was ever started"},
        409: {
            "model": wire.ErrorResponse,
            "description": "the last maintenance is over, or already being cancelled",
        },
    },
)
async def cancel(ctx: Ctx, caller: Who) -> wire.Maintenance:
    """Extension: cancel the active maintenance: no machine starts any more, a draining
    one stops draining (uncordoned, its units come back), one being rebooted comes back
    and is uncordoned; then it is ``cancelled``.  Nothing is written when it is
    refused."""
    return maintenance.view(await maintenance.cancel_maintenance(ctx.store, caller=caller))


@router.get("/reboot-requests", response_model=list[wire.RebootRequest])
async def requests(ctx: Ctx) -> list[wire.RebootRequest]:
    """Extension: the machines that ask for a reboot (their agent saw the reboot-required
    file, or someone asked), by machine id."""
    return [maintenance.request_view(r) for r in await maintenance.list_requests(ctx.store)]


@router.post(
    "/machines/{machine_id}/reboot-request",
    status_code=201,
    response_model=wire.RebootRequest,
    responses={404: {"model": wire.ErrorResponse, "description": "no such machine"}},
)
async def request(ctx: Ctx, caller: Who, machine_id: str) -> wire.RebootRequest:
    """Extension: ask for a reboot of the machine as its agent would: the engine leader
    serves it when a slot of the cluster's reboot semaphore is free."""
    found = await maintenance.request_reboot(ctx.store, machine_id, caller=caller, clock=ctx.clock)
    return maintenance.request_view(found)
