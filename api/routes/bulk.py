"""Extension: ``PUT /units``, many unit changes in one request (see ``service/unitbatch.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from fleetd import model
from fleetd.caller import Caller

from .. import wire
from ..auth import caller_of
from ..context import ApiContext, get_ctx
from ..service import commands, unitbatch

router = APIRouter(tags=["units"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


@router.put(
    "/units",
    response_model=wire.UnitBatchResponse,
    response_model_exclude_none=True,
    responses={
        400: {
            "model": wire.ErrorResponse,
            "description": "an invalid item (named in the message), a name listed twice, "
            f"or more than {unitbatch.MAX_BATCH_UNITS} units; nothing was written",
        },
        409: {
            "model": wire.ErrorResponse,
            "description": "an item fleet would refuse with 409 (named in the message); "
            "nothing was written unless the message says the unit changed meanwhile",
        },
        413: {"model": wire.ErrorResponse, "description": "body over 1 MiB"},
        415: {"model": wire.ErrorResponse, "description": "not application/json"},
    },
)
async def set_units(
    ctx: Ctx,
    caller: Annotated[Caller, Depends(caller_of)],
    body: wire.UnitBatchRequest,
    replace: Annotated[
        bool,
        Query(description="replace existing units whose options differ (else 409)"),
    ] = True,
) -> wire.UnitBatchResponse:
    """Extension: create units or change their ``desiredState``, many at once.

    Each item means what the body of ``PUT /units/{name}`` means.  All items
    are checked before anything is written; the writes go out in etcd
    transactions of at most 128 operations, each unit's new file with the version it
    adds.  Results are in request order.
    """
    changes = [
        commands.UnitChange(
            name=item.name,
            options=item.options,
            desired=model.DesiredState(item.desiredState) if item.desiredState else None,
        )
        for item in body.units
    ]
    results = await unitbatch.set_units(
        ctx.store, changes, caller=caller, replace_options=replace, clock=ctx.clock
    )
    return wire.UnitBatchResponse(
        units=[
            wire.UnitBatchResult(
                name=c.name, result=r.result.value, warnings=list(r.warnings) or None
            )
            for c, r in zip(changes, results, strict=True)
        ]
    )
