"""Extension: ``POST /plan``, what unit changes would do, writing nothing
(see ``service/dryrun.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from fleetd import model
from fleetd.caller import Caller

from .. import wire
from ..auth import caller_of
from ..context import ApiContext, get_ctx
from ..service import commands, dryrun, unitbatch

router = APIRouter(tags=["units"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


@router.post(
    "/plan",
    response_model=wire.PlanResponse,
    responses={
        400: {
            "model": wire.ErrorResponse,
            "description": "an invalid item (named in the message: its name, its file), a "
            f"name listed twice, or more than {unitbatch.MAX_BATCH_UNITS} units",
        },
        409: {
            "model": wire.ErrorResponse,
            "description": "an item PUT /units would refuse with 409 (named in the message)",
        },
        413: {"model": wire.ErrorResponse, "description": "body over 1 MiB"},
        415: {"model": wire.ErrorResponse, "description": "not application/json"},
    },
)
async def plan_units(
    ctx: Ctx,
    caller: Annotated[Caller, Depends(caller_of)],
    body: wire.PlanRequest,
    replace: Annotated[
        bool,
        Query(description="plan replacing existing units whose options differ (else 409)"),
    ] = True,
) -> wire.PlanResponse:
    """Extension: what the engine would do if ``units`` were written as ``PUT /units``
    writes them: where each unit would be placed or why it could not be, and which
    schedule entries would be added, changed (a new file: restarted in place) or
    removed (a unit replaced through ``Replaces=``, or moved).  Nothing is written.

    The cluster is read as the engine leader reads it and planned with the engine's
    own full pass, with this fleetd's scheduling settings (``strategy`` in the answer).
    A read for roles: any token may plan.
    """
    changes = [
        commands.UnitChange(
            name=item.name,
            options=item.options,
            desired=model.DesiredState(item.desiredState) if item.desiredState else None,
        )
        for item in body.units
    ]
    return await dryrun.plan_units(
        ctx.store,
        changes,
        settings=ctx.scheduling,
        caller=caller,
        replace_options=replace,
        clock=ctx.clock,
        parsed=ctx.parsed,
    )
