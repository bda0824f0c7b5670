"""fleet v1 ``/state``: what each agent reports systemd sees."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from .. import wire
from ..context import ApiContext, get_ctx
from ..service import queries
from ..service.pagination import paginate, parse_token
from .units import PageTokenParam

router = APIRouter(tags=["state"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


def _key(state: wire.UnitState) -> str:
    return f"{state.name}/{state.machineID}"


@router.get("/state", response_model=wire.UnitStatePage, response_model_exclude_none=True)
async def list_states(
    ctx: Ctx,
    next_page_token: PageTokenParam = None,
    machine_id: Annotated[
        str | None, Query(alias="machineID", description="only states from this machine")
    ] = None,
    unit_name: Annotated[
        list[str] | None, Query(alias="unitName", description="only states of these units")
    ] = None,
) -> wire.UnitStatePage:
    """A page of unit states, sorted by unit name then machine."""
    token = parse_token(next_page_token or [])
    machine = machine_id or None
    if machine is not None and "/" in machine:
        # A machine id is one registry key segment; no such machine can exist.
        return wire.UnitStatePage(states=[])
    states = await queries.list_states(ctx.store, machine, unit_name or None)
    page = paginate(states, _key, token, ctx.page_size)
    return wire.UnitStatePage(states=page.items, nextPageToken=page.next_token)
