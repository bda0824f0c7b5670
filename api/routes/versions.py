"""Extension: the kept versions of a unit's file (see ``service/history.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from .. import wire
from ..context import ApiContext, get_ctx
from ..service import history

router = APIRouter(tags=["units"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": wire.ErrorResponse, "description": "invalid unit name or version"},
}


@router.get(
    "/units/{name}/versions",
    response_model=wire.UnitVersionList,
    responses={
        **ERRORS,
        404: {"model": wire.ErrorResponse, "description": "no such unit and no versions"},
    },
)
async def list_versions(ctx: Ctx, name: str) -> wire.UnitVersionList:
    """Extension: the last 20 versions of the unit's file, oldest first, each with who
    wrote it, when, and a one-line summary of what changed since the version before it.
    A destroyed unit's versions stay (``current`` is null)."""
    return await history.version_list(ctx.store, name)


@router.get(
    "/units/{name}/versions/{version}",
    response_model=wire.UnitVersion,
    responses={
        **ERRORS,
        404: {"model": wire.ErrorResponse, "description": "no such version (kept or ever)"},
    },
)
async def get_version(
    ctx: Ctx, name: str, version: Annotated[int, Path(ge=1, le=2**53)]
) -> wire.UnitVersion:
    """Extension: one version of the unit's file, with its text."""
    return await history.get_version(ctx.store, name, version)
