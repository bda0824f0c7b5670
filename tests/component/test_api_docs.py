"""/docs works offline (every file it loads is served by fleetd) and the OpenAPI description
declares the bearer scheme, with the role each operation needs."""

from __future__ import annotations

import re

from apikit import client_for, make_app, new_store

from fleetd.api.access import ACCESS


async def test_docs_load_only_what_fleetd_serves() -> None:
    async with client_for(make_app(new_store())) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", page.text)
        assert urls, page.text
        assert not [u for u in urls if "://" in u], urls
        assets = [u for u in urls if u.startswith("/docs/assets/")]
        assert len(assets) >= 3
        for url in assets:
            r = await client.get(url)
            assert r.status_code == 200 and r.content, url
        css = await client.get("/docs/assets/swagger-ui.css")
        assert css.headers["content-type"].startswith("text/css")
        for bad in ("../__init__.py", "%2e%2e/__init__.py", "index.html", "nope.js"):
            assert (await client.get(f"/docs/assets/{bad}")).status_code == 404, bad
        assert (await client.get("/docs/oauth2-redirect")).status_code == 200
        assert (await client.get("/redoc")).status_code == 404


async def test_openapi_declares_the_bearer_scheme_and_roles() -> None:
    async with client_for(make_app(new_store())) as client:
        schema = (await client.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "an API token (api_tokens_file): roles read, operate, admin",
    }
    assert schema["security"] == [{"bearerAuth": []}]
    roles = {
        (method.upper(), path): op.get("x-fleetd-role")
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
    }
    for key, role in roles.items():
        access = ACCESS[key]
        assert access.role is not None and role == access.role.label, key
    put = schema["paths"]["/fleet/v1/units/{name}"]["put"]
    assert (put["x-fleetd-role"], put["x-fleetd-role-with-unit-file"]) == ("operate", "admin")
