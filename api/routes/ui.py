"""The dashboard's page at ``/ui/`` (public: the files hold no data; the data comes
from ``/ui/api``, behind the session of api/ui/gate.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.responses import RedirectResponse

from fleetd.errors import NotFound

from ..ui.assets import INDEX, SECURITY_HEADERS, catalogue
from .cluster import accepts_gzip

router = APIRouter(include_in_schema=False)
AcceptEncoding = Annotated[str, Header(alias="Accept-Encoding")]
IfNoneMatch = Annotated[str, Header(alias="If-None-Match")]


@router.get("/ui")
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=308)


@router.get("/ui/")
async def ui_index(
    accept_encoding: AcceptEncoding = "", if_none_match: IfNoneMatch = ""
) -> Response:
    return _serve(INDEX, accept_encoding, if_none_match)


@router.get("/ui/{path:path}")
async def ui_asset(
    path: str, accept_encoding: AcceptEncoding = "", if_none_match: IfNoneMatch = ""
) -> Response:
    return _serve(path, accept_encoding, if_none_match)


def _serve(name: str, accept_encoding: str, if_none_match: str) -> Response:
    asset = catalogue().get(name)
    if asset is None:
        raise NotFound(f"no such file of the dashboard: {name}")
    # Always revalidated (a new fleetd version serves new files under the same names).
    headers = {
        **SECURITY_HEADERS,
        "ETag": asset.etag,
        "Cache-Control": "no-cache",
        "Vary": "Accept-Encoding",
    }
    if asset.etag in (tag.strip() for tag in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    body = asset.body
    if accepts_gzip(accept_encoding) and len(asset.gzipped) < len(body):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=asset.content_type, headers=headers)
