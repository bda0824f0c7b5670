"""Extension: rolling updates (``/rollouts``), driven by the engine leader (docs/rollouts.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from fleetd.caller import Caller
from fleetd.rollouts.control import Control

from .. import wire
from ..auth import caller_of
from ..context import ApiContext, get_ctx
from ..service import rollouts

router = APIRouter(tags=["rollouts"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
Who = Annotated[Caller, Depends(caller_of)]
NO_ROLLOUT: dict[int | str, dict[str, object]] = {
    400: {"model": wire.ErrorResponse, "description": "invalid unit name"},
    404: {"model": wire.ErrorResponse, "description": "the unit never had a rollout"},
}
CONTROL: dict[int | str, dict[str, object]] = {
    **NO_ROLLOUT,
    409: {
        "model": wire.ErrorResponse,
        "description": "the action does not apply in the rollout's phase (it ended, it has "
        "no canaries awaiting a promotion, ...)",
    },
}


@router.post(
    "/rollouts",
    status_code=201,
    response_model=wire.Rollout,
    responses={
        400: {
            "model": wire.ErrorResponse,
            "description": "invalid unit file or settings (maxParallel below 1, a deadline "
            "not longer than minHealthyTime, ...), both or neither of options and version",
        },
        404: {
            "model": wire.ErrorResponse,
            "description": "no such unit, or the version is not kept",
        },
        409: {
            "model": wire.ErrorResponse,
            "description": "the unit is not launched (a template: no launched instance), "
            "nothing would change, or another rollout of it is active",
        },
        413: {"model": wire.ErrorResponse, "description": "body over 1 MiB"},
        415: {"model": wire.ErrorResponse, "description": "not application/json"},
    },
)
async def start(ctx: Ctx, caller: Who, body: wire.RolloutRequest) -> wire.Rollout:
    """Extension: roll a unit out to a new file (``options``) or back to one of its kept
    versions (``version``).  The new text (a new version, by the caller) and the rollout
    are written together; the engine leader then replaces the targets (a template's
    launched instances, a Global unit's machines, or the unit) ``maxParallel`` at a time,
    each counted once it has been active and healthy for ``minHealthyTime``.  Nothing is
    written when it is refused."""
    spec = rollouts.RolloutSpec(
        unit=body.unit,
        settings=rollouts.settings_of(body),
        options=body.options,
        version=body.version,
    )
    record = await rollouts.start_rollout(ctx.store, spec, caller=caller, clock=ctx.clock)
    return rollouts.view(record)


@router.get("/rollouts", response_model=wire.RolloutList)
async def list_rollouts(ctx: Ctx) -> wire.RolloutList:
    """Extension: the last rollout of every unit that had one, by unit name."""
    return await rollouts.list_rollouts(ctx.store)


@router.get("/rollouts/{unit}", response_model=wire.Rollout, responses=NO_ROLLOUT)
async def get_rollout(ctx: Ctx, unit: str) -> wire.Rollout:
    """Extension: the last rollout of a unit, with every target's progress."""
    return await rollouts.get_rollout(ctx.store, unit)


async def _control(ctx: ApiContext, caller: Caller, unit: str, action: Control) -> wire.Rollout:
    record = await rollouts.control_rollout(ctx.store, unit, action, caller=caller, clock=ctx.clock)
    return rollouts.view(record)


@router.post("/rollouts/{unit}/pause", response_model=wire.Rollout, responses=CONTROL)
async def pause(ctx: Ctx, caller: Who, unit: str) -> wire.Rollout:
    """Extension: start no new target (those in flight are still followed)."""
    return await _control(ctx, caller, unit, Control.PAUSE)


@router.post("/rollouts/{unit}/resume", response_model=wire.Rollout, responses=CONTROL)
async def resume(ctx: Ctx, caller: Who, unit: str) -> wire.Rollout:
    """Extension: go on with a paused rollout (or its revert)."""
    return await _control(ctx, caller, unit, Control.RESUME)


@router.post("/rollouts/{unit}/promote", response_model=wire.Rollout, responses=CONTROL)
async def promote(ctx: Ctx, caller: Who, unit: str) -> wire.Rollout:
    """Extension: the canaries are good: roll out to every target."""
    return await _control(ctx, caller, unit, Control.PROMOTE)


@router.post("/rollouts/{unit}/abort", response_model=wire.Rollout, responses=CONTROL)
async def abort(ctx: Ctx, caller: Who, unit: str) -> wire.Rollout:
    """Extension: stop here: every target stays with the file it has now."""
    return await _control(ctx, caller, unit, Control.ABORT)
