"""fleet v1 ``/units`` routes, plus the placement extension."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from fleetd import model
from fleetd.caller import Caller
from fleetd.errors import InvalidInput

from .. import wire
from ..auth import caller_of
from ..context import ApiContext, get_ctx
from ..service import commands, queries
from ..service.pagination import paginate, parse_token
from ..service.unitwarnings import WARNINGS_HEADER, encode_warnings

router = APIRouter(tags=["units"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
PageTokenParam = Annotated[
    list[str] | None,
    Query(alias="nextPageToken", description="token from the previous page's nextPageToken"),
]
HEADERS = {
    WARNINGS_HEADER: {
        "description": "extension: a JSON array of warnings about the unit file (what fleet "
        "accepted and fleetd suspects is a mistake); absent when there are none",
        "schema": {"type": "string"},
    }
}
ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": wire.ErrorResponse, "description": "invalid input"},
}


@router.get("/units", response_model=wire.UnitPage, response_model_exclude_none=True)
async def list_units(ctx: Ctx, next_page_token: PageTokenParam = None) -> wire.UnitPage:
    """A page of units, sorted by name."""
    token = parse_token(next_page_token or [])
    page = await queries.unit_page(ctx.store, token, ctx.page_size)
    return wire.UnitPage(units=page.items, nextPageToken=page.next_token)


@router.get(
    "/units/{name}",
    response_model=wire.Unit,
    response_model_exclude_none=True,
    responses={**ERRORS, 404: {"model": wire.ErrorResponse, "description": "no such unit"}},
)
async def get_unit(ctx: Ctx, name: str) -> wire.Unit:
    return await queries.get_unit(ctx.store, name)


@router.put(
    "/units/{name}",
    status_code=204,
    response_class=Response,
    responses={
        201: {"description": "created", "headers": HEADERS},
        204: {"description": "desired state changed (or options replaced)", "headers": HEADERS},
        **ERRORS,
        409: {
            "model": wire.ErrorResponse,
            "description": "creating without options, updating without desiredState, "
            "or different options with replace=false",
        },
        413: {"model": wire.ErrorResponse, "description": "body over 1 MiB"},
        415: {"model": wire.ErrorResponse, "description": "not application/json"},
    },
)
async def set_unit(
    ctx: Ctx,
    caller: Annotated[Caller, Depends(caller_of)],
    name: str,
    body: wire.UnitRequest,
    replace: Annotated[
        bool,
        Query(
            description="extension: replace an existing unit whose options differ "
            "(fleet's behaviour, the default); false answers 409 instead"
        ),
    ] = True,
) -> Response:
    """Create a unit (needs ``options``) or change its ``desiredState``.  A new file is
    kept as the unit's next version, by the request's caller."""
    if body.name and body.name != name:
        raise InvalidInput(
            f"name in URL {name!r} differs from unit name in request body {body.name!r}"
        )
    desired = model.DesiredState(body.desiredState) if body.desiredState else None
    change = commands.UnitChange(name=name, options=body.options, desired=desired)
    outcome = await commands.set_unit(
        ctx.store, change, caller=caller, replace_options=replace, clock=ctx.clock
    )
    response = Response(status_code=201 if outcome.result is commands.SetResult.CREATED else 204)
    if outcome.warnings:
        response.headers[WARNINGS_HEADER] = encode_warnings(outcome.warnings)
    return response


@router.delete(
    "/units/{name}",
    status_code=204,
    response_class=Response,
    responses={**ERRORS, 404: {"model": wire.ErrorResponse, "description": "no such unit"}},
)
async def destroy_unit(ctx: Ctx, name: str) -> Response:
    await commands.destroy_unit(ctx.store, name)
    return Response(status_code=204)


@router.get(
    "/units/{name}/placement",
    response_model=wire.Placement,
    responses={**ERRORS, 404: {"model": wire.ErrorResponse, "description": "no such unit"}},
)
async def get_placement(ctx: Ctx, name: str) -> wire.Placement:
    """Extension: why the unit is not placed, per machine (empty when it is placed)."""
    return await queries.get_placement(ctx.store, name)


@router.get("/placements", response_model=wire.PlacementPage, response_model_exclude_none=True)
async def list_placements(ctx: Ctx, next_page_token: PageTokenParam = None) -> wire.PlacementPage:
    """Extension: every unit the engine could not place, with the reasons."""
    token = parse_token(next_page_token or [])
    page = paginate(
        await queries.list_placements(ctx.store), lambda p: p.name, token, ctx.page_size
    )
    return wire.PlacementPage(placements=page.items, nextPageToken=page.next_token)
