"""Extension: ``GET /fleet/v1/cluster``, the whole cluster in one answer for a live view."""

from __future__ import annotations

import gzip
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response

from .. import wire
from ..context import ApiContext, get_ctx
from ..service.clusterview import read_cluster

router = APIRouter(tags=["cluster"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
# Below this size compressing costs more than it saves.
GZIP_FROM = 4096


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value admits gzip (not refused with ``q=0``)."""
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().lower().replace(" ", "")
            return q not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


@router.get(
    "/cluster",
    response_model=wire.ClusterView,
    responses={200: {"content": {"application/json": {}}, "description": "the cluster"}},
)
async def get_cluster(
    ctx: Ctx, accept_encoding: Annotated[str, Header(alias="Accept-Encoding")] = ""
) -> Response:
    """Extension: machines, units (without their files), schedule, unit states,
    placements and the leader, read from ``revision`` on: a live view reads this once,
    then follows ``/events?since=<revision>``.  Not paged (gzip-compressed when the
    client accepts it)."""
    view = await read_cluster(ctx.store, ctx.defaults)
    body = view.model_dump_json(by_alias=True, exclude_none=True).encode()
    headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
    if len(body) >= GZIP_FROM and accepts_gzip(accept_encoding):
        body = gzip.compress(body, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="application/json", headers=headers)
