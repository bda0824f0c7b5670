"""``/docs`` served from the package (no CDN: it works without internet access), and the
bearer scheme in the OpenAPI description (so ``/docs`` has an Authorize button and
generated clients send the token).

Swagger UI's files come from the ``swagger-ui-bundle`` package; only the files
of its directory are served (by name, so no path can leave it).  Each
operation of the description says which role it needs (``x-fleetd-role``,
from api/access.py), and every operation is secured by the bearer scheme
(the unix socket needs no token; its callers have every right).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response

from fleetd.errors import ApiError

from .access import ACCESS

ASSETS = Path(swagger_ui_bundle.swagger_ui_path)
SCHEME = "bearerAuth"
_SERVED = {
    "swagger-ui-bundle.js",
    "swagger-ui.css",
    "favicon-32x32.png",
    "favicon-16x16.png",
}


def install(app: FastAPI) -> None:
    """The docs routes of ``app`` (built with ``docs_url=None, redoc_url=None``)."""

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/docs/assets/{path:path}", include_in_schema=False)
    async def asset(path: str) -> Response:
        if path not in _SERVED:
            raise ApiError(404, "not found")
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return Response(
            (ASSETS / path).read_bytes(),
            media_type=kind,
            headers={"Cache-Control": "public, max-age=86400"},
        )

    plain = app.openapi

    def with_security() -> dict[str, Any]:
        if app.openapi_schema is None:
            add_security(plain())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = with_security  # type: ignore[method-assign]


def add_security(schema: dict[str, Any]) -> None:
    """The bearer scheme on every operation, and the role each needs (in place)."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "an API token (api_tokens_file): roles read, operate, admin",
    }
    schema["security"] = [{SCHEME: []}]
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            access = ACCESS.get((method.upper(), path))
            if access is None or access.role is None:
                continue
            operation["x-fleetd-role"] = access.role.label
            if access.unit_file is not None:
                operation["x-fleetd-role-with-unit-file"] = access.unit_file.label
