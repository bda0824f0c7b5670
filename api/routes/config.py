"""Extension: the cluster settings (``/config``) that every engine reads from the registry
and applies without a restart (docs/configuration.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from fleetd.engine.settings import cluster_defaults

from .. import wire
from ..context import ApiContext, get_ctx
from ..service import config

router = APIRouter(tags=["config"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


@router.get("/config", response_model=wire.ClusterSettings)
async def get_config(ctx: Ctx) -> wire.ClusterSettings:
    """Extension: every cluster setting with its value in force, its default and whether
    it is set.  Defaults of the strategy and of the mass-loss guard are this fleetd's
    configuration's (``scheduler_strategy``, ``agent_ttl``)."""
    return await config.read_settings(ctx.store, cluster_defaults(ctx.scheduling))


@router.patch(
    "/config",
    response_model=wire.ClusterSettings,
    responses={
        400: {
            "model": wire.ErrorResponse,
            "description": "an unknown setting, a value of the wrong type or out of range, "
            "or no setting at all (nothing is changed)",
        },
        409: {"model": wire.ErrorResponse, "description": "they kept changing meanwhile"},
        413: {"model": wire.ErrorResponse, "description": "body over 1 MiB"},
        415: {"model": wire.ErrorResponse, "description": "not application/json"},
    },
)
async def patch_config(ctx: Ctx, body: wire.ClusterSettingsPatch) -> wire.ClusterSettings:
    """Extension: change cluster settings (``null``: back to the default), all or nothing;
    every engine applies them without a restart (a new strategy or guard threshold
    starts a full pass)."""
    return await config.change_settings(ctx.store, body.changes(), cluster_defaults(ctx.scheduling))
