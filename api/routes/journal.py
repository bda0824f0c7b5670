"""Extension: ``/units/{name}/status`` and ``/units/{name}/journal`` without SSH.

The fleetd on the unit's machine runs ``systemctl status`` / ``journalctl``
itself; any other fleetd forwards the request there (``service/peers.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from fleetd import model
from fleetd.errors import Conflict, FleetError, NotFound, Unavailable
from fleetd.unitfile import UnitName

from .. import wire
from ..auth import bearer_token
from ..context import ApiContext, get_ctx
from ..service import queries
from ..service.inspector import MAX_JOURNAL_LINES, UnitInspector
from ..service.peers import FORWARD_HEADER

router = APIRouter(tags=["units"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
MachineParam = Annotated[
    str | None,
    Query(alias="machineID", description="ask this machine (default: where the unit is scheduled)"),
]
FIRST_CHUNK_WAIT = 2.0
_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"model": wire.ErrorResponse, "description": "no such unit or machine"},
    409: {"model": wire.ErrorResponse, "description": "the unit is not scheduled"},
    502: {"model": wire.ErrorResponse, "description": "the unit's machine did not answer"},
}


async def _target(
    ctx: ApiContext, request: Request, name: str, machine_id: str | None
) -> model.Machine | None:
    """The machine to ask, or None when it is this one."""
    UnitName.parse(name)
    if await ctx.store.get_unit(name) is None:
        raise NotFound(f"unit {name} does not exist")
    if machine_id:
        if ctx.machine_id is not None and machine_id == ctx.machine_id:
            return None
        if "/" in machine_id:
            raise NotFound(f"machine {machine_id} is not registered")
        machine = await ctx.store.get_machine(machine_id)
        if machine is None:
            raise NotFound(f"machine {machine_id} is not registered")
    else:
        machine = await queries.unit_machine(ctx.store, name)
        if machine is None:
            raise Conflict(f"unit {name} is not scheduled to any machine")
    if machine.id == ctx.machine_id:
        return None
    if request.headers.get(FORWARD_HEADER):
        raise Conflict(f"unit {name} is not on machine {ctx.machine_id or '(unknown)'}")
    return machine


def _bearer(request: Request) -> str | None:
    """The caller's token, to ask the peer as the same caller."""
    return bearer_token(request.headers.get("authorization", ""))


def _local(ctx: ApiContext) -> UnitInspector:
    if ctx.inspector is None:
        raise Unavailable("this fleetd runs no agent and cannot inspect units")
    return ctx.inspector


@router.get("/units/{name}/status", response_model=wire.UnitStatus, responses=_RESPONSES)
async def unit_status(
    ctx: Ctx, request: Request, name: str, machine_id: MachineParam = None
) -> wire.UnitStatus:
    """Extension: ``systemctl status`` of the unit on its machine."""
    machine = await _target(ctx, request, name, machine_id)
    if machine is None:
        code, output = await _local(ctx).status(name)
        return wire.UnitStatus(
            name=name, machineID=ctx.machine_id or "", output=output, exitCode=code
        )
    data = await ctx.peers.get_json(
        machine, f"/fleet/v1/units/{name}/status", {"machineID": machine.id}, _bearer(request)
    )
    return wire.UnitStatus.model_validate(data)


@router.get(
    "/units/{name}/journal",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "journal lines"}, **_RESPONSES},
)
async def unit_journal(
    ctx: Ctx,
    request: Request,
    name: str,
    lines: Annotated[int, Query(ge=0, le=MAX_JOURNAL_LINES, description="last N lines")] = 10,
    follow: Annotated[bool, Query(description="keep streaming new lines")] = False,
    output: Annotated[
        wire.JournalOutput, Query(description="journalctl's output mode (--output)")
    ] = "short",
    machine_id: MachineParam = None,
) -> StreamingResponse:
    """Extension: the unit's journal from its machine (``journalctl -u``), optionally followed."""
    machine = await _target(ctx, request, name, machine_id)
    source: AsyncIterator[bytes]
    if machine is None:
        source = _local(ctx).journal(name, lines, follow, output)
    else:
        params = {"lines": str(lines), "follow": "true" if follow else "false"}
        if output != "short":
            params["output"] = output
        params["machineID"] = machine.id
        source = ctx.peers.stream(
            machine, f"/fleet/v1/units/{name}/journal", params, _bearer(request)
        )
    # Wait briefly for the first chunk before answering, so that a failure becomes
    # an error status; a followed journal with nothing in it yet starts streaming.
    first: asyncio.Future[bytes] = asyncio.ensure_future(anext(source, b""))
    await asyncio.wait({first}, timeout=FIRST_CHUNK_WAIT)
    if first.done():
        first.result()  # a failure before the first chunk is the answer's status
    return StreamingResponse(_chain(first, source), media_type="text/plain; charset=utf-8")


async def _chain(first: asyncio.Future[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        chunk = await first
        if chunk:
            yield chunk
            async for chunk in rest:
                yield chunk
    except FleetError as exc:
        yield f"\n-- {exc} --\n".encode()
    finally:
        if not first.done():
            first.cancel()
        close = getattr(rest, "aclose", None)
        if close is not None:
            await close()
