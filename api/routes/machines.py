"""fleet v1 ``/machines`` (list, metadata PATCH), plus capacity, cordon and drain."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response

from fleetd import model

from .. import wire
from ..context import ApiContext, get_ctx
from ..service import commands, config, queries
from ..service.pagination import paginate, parse_token
from .units import ERRORS, PageTokenParam

router = APIRouter(tags=["machines"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": wire.ErrorResponse, "description": "no such machine"}
}


@router.get("/machines", response_model=wire.MachinePage, response_model_exclude_none=True)
async def list_machines(ctx: Ctx, next_page_token: PageTokenParam = None) -> wire.MachinePage:
    """A page of machines, sorted by id, with capacity and allocation (extensions), and
    the mass-loss guard while it holds (``guard``, extension)."""
    token = parse_token(next_page_token or [])
    machines, guard = await asyncio.gather(
        queries.list_machines(ctx.store, ctx.defaults), config.read_guard(ctx.store)
    )
    page = paginate(machines, lambda m: m.id, token, ctx.page_size)
    return wire.MachinePage(machines=page.items, nextPageToken=page.next_token, guard=guard)


@router.patch(
    "/machines",
    status_code=204,
    response_class=Response,
    responses={**ERRORS, 415: {"model": wire.ErrorResponse, "description": "not JSON"}},
)
async def patch_machines(
    ctx: Ctx,
    ops: Annotated[list[wire.MetadataOp], Body(max_length=1000)],
) -> Response:
    """Add, replace or remove metadata of machines (JSON Patch, fleet's paths
    ``/<machine_id>/metadata/<key>``); all operations are validated first."""
    await commands.patch_metadata(ctx.store, ops)
    return Response(status_code=204)


@router.get(
    "/machines/{machine_id}",
    response_model=wire.Machine,
    response_model_exclude_none=True,
    responses=NOT_FOUND,
)
async def get_machine(ctx: Ctx, machine_id: str) -> wire.Machine:
    """Extension: one machine with capacity, allocation and flags."""
    return await queries.get_machine(ctx.store, machine_id, ctx.defaults)


def _flags(machine_id: str, flags: model.MachineFlags) -> wire.MachineFlags:
    return wire.MachineFlags(
        id=machine_id, unschedulable=flags.unschedulable, draining=flags.draining
    )


@router.post("/machines/{machine_id}/cordon", response_model=wire.MachineFlags, responses=NOT_FOUND)
async def cordon(ctx: Ctx, machine_id: str) -> wire.MachineFlags:
    """Extension: place no new units on the machine (its units stay)."""
    flags = await commands.set_schedulable(ctx.store, machine_id, commands.FlagAction.CORDON)
    return _flags(machine_id, flags)


@router.post(
    "/machines/{machine_id}/uncordon", response_model=wire.MachineFlags, responses=NOT_FOUND
)
async def uncordon(ctx: Ctx, machine_id: str) -> wire.MachineFlags:
    """Extension: make the machine schedulable again (ends a drain too)."""
    flags = await commands.set_schedulable(ctx.store, machine_id, commands.FlagAction.UNCORDON)
    return _flags(machine_id, flags)


@router.post("/machines/{machine_id}/drain", response_model=wire.MachineFlags, responses=NOT_FOUND)
async def drain(ctx: Ctx, machine_id: str) -> wire.MachineFlags:
    """Extension: cordon the machine and move its units to other machines."""
    flags = await commands.set_schedulable(ctx.store, machine_id, commands.FlagAction.DRAIN)
    return _flags(machine_id, flags)
