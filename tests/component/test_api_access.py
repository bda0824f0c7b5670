"""Scoped tokens on the real TCP listener: every route × every caller, with the right status.

Callers: a token of each role (read, operate, admin), no token, a wrong token, a
token removed from the tokens file and an expired one.  A caller whose role
allows the route gets the route's own answer; the others get 401 (no valid
token) or 403 naming the role needed, in fleet's error shape, and the registry
is unchanged.  Each case runs on a freshly seeded store (swapped into the app).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import leakcheck
import pytest
from apikit import make_app, new_store, options_of
from hostile import M1, SERVICE, dump, seed

from fleetd.api.access import ACCESS, RouteTable, check_table
from fleetd.api.app import routes_of
from fleetd.api.serve import ApiServer
from fleetd.caller import Role
from fleetd.registry.store import Store
from fleetd.tokens import TokenSource, digest

V1 = "/fleet/v1"
SECRETS = {
    "viewer": leakcheck.secret("read-secret-0123456789abcdef"),
    "ops": leakcheck.secret("operate-secret-0123456789abcdef"),
    "boss": leakcheck.secret("admin-secret-0123456789abcdef"),
    "gone": leakcheck.secret("removed-secret-0123456789abcdef"),
    "old": leakcheck.secret("expired-secret-0123456789abcdef"),
}
ROLES = {"viewer": Role.READ, "ops": Role.OPERATE, "boss": Role.ADMIN}
WRONG = leakcheck.secret("wrong-secret-0123456789abcdef")


class Inspector:
    async def status(self, name: str) -> tuple[int, str]:
        return 0, f"* {name} - demo\n   Active: active (running)\n"

    async def journal(
        self, name: str, lines: int, follow: bool, output: str = "short"
    ) -> AsyncIterator[bytes]:
        yield f"{name}: hello\n".encode()


@dataclass(frozen=True)
class Case:
    """A request for one route, and what a caller allowed to make it gets."""

    method: str
    template: str
    path: str
    ok: int
    body: Any = None


CASES = [
    Case("GET", f"{V1}/units", f"{V1}/units", 200),
    Case(
        "PUT",
        f"{V1}/units",
        f"{V1}/units",
        200,
        {"units": [{"name": "web.service", "desiredState": "inactive"}]},
    ),
    Case("GET", f"{V1}/units/{{name}}", f"{V1}/units/web.service", 200),
    Case(
        "PUT",
        f"{V1}/units/{{name}}",
        f"{V1}/units/web.service",
        204,
        {"desiredState": "inactive"},
    ),
    Case("DELETE", f"{V1}/units/{{name}}", f"{V1}/units/web.service", 204),
    Case("GET", f"{V1}/units/{{name}}/placement", f"{V1}/units/web.service/placement", 200),
    Case("GET", f"{V1}/units/{{name}}/status", f"{V1}/units/web.service/status", 200),
    Case("GET", f"{V1}/units/{{name}}/journal", f"{V1}/units/web.service/journal", 200),
    Case("GET", f"{V1}/units/{{name}}/versions", f"{V1}/units/web.service/versions", 200),
    Case(
        "GET",
        f"{V1}/units/{{name}}/versions/{{version}}",
        f"{V1}/units/web.service/versions/7",
        404,
    ),
    Case("GET", f"{V1}/placements", f"{V1}/placements", 200),
    Case(
        "POST",
        f"{V1}/rollouts",
        f"{V1}/rollouts",
        201,
        {"unit": "web.service", "options": options_of(SERVICE.replace("demo", "v2"))},
    ),
    Case("GET", f"{V1}/rollouts", f"{V1}/rollouts", 200),
    Case("GET", f"{V1}/rollouts/{{unit}}", f"{V1}/rollouts/web.service", 404),
    *(
        Case("POST", f"{V1}/rollouts/{{unit}}/{action}", f"{V1}/rollouts/web.service/{action}", 404)
        for action in ("pause", "resume", "promote", "abort")
    ),
    Case(  # a read, even with a unit file: it writes nothing
        "POST",
        f"{V1}/plan",
        f"{V1}/plan",
        200,
        {
            "units": [
                {"name": "new.service", "desiredState": "launched", "options": options_of(SERVICE)}
            ]
        },
    ),
    Case("GET", f"{V1}/state", f"{V1}/state", 200),
    Case("GET", f"{V1}/events", f"{V1}/events", 200),
    Case("GET", f"{V1}/discovery", f"{V1}/discovery", 200),
    Case("GET", f"{V1}/cluster", f"{V1}/cluster", 200),
    Case("GET", f"{V1}/config", f"{V1}/config", 200),
    Case("PATCH", f"{V1}/config", f"{V1}/config", 200, {"strategy": "spread"}),
    Case("GET", f"{V1}/machines", f"{V1}/machines", 200),
    Case(
        "PATCH",
        f"{V1}/machines",
        f"{V1}/machines",
        204,
        [{"op": "add", "path": f"/{M1}/metadata/zone", "value": "b"}],
    ),
    Case("GET", f"{V1}/machines/{{machine_id}}", f"{V1}/machines/{M1}", 200),
    Case("POST", f"{V1}/machines/{{machine_id}}/cordon", f"{V1}/machines/{M1}/cordon", 200),
    Case("POST", f"{V1}/machines/{{machine_id}}/uncordon", f"{V1}/machines/{M1}/uncordon", 200),
    Case("POST", f"{V1}/machines/{{machine_id}}/drain", f"{V1}/machines/{M1}/drain", 200),
    Case("POST", f"{V1}/maintenance", f"{V1}/maintenance", 201, {"machines": [M1]}),
    Case("GET", f"{V1}/maintenance", f"{V1}/maintenance", 404),
    Case("POST", f"{V1}/maintenance/cancel", f"{V1}/maintenance/cancel", 404),
    Case("GET", f"{V1}/reboot-requests", f"{V1}/reboot-requests", 200),
    Case(
        "POST",
        f"{V1}/machines/{{machine_id}}/reboot-request",
        f"{V1}/machines/{M1}/reboot-request",
        201,
    ),
    Case("GET", "/healthz", "/healthz", 200),
    Case("GET", "/metrics", "/metrics", 200),
    Case("GET", "/openapi.json", "/openapi.json", 200),
    Case("GET", "/docs", "/docs", 200),
    Case("GET", "/docs/oauth2-redirect", "/docs/oauth2-redirect", 200),
    Case("GET", "/docs/assets/{path:path}", "/docs/assets/swagger-ui.css", 200),
    Case("GET", "/ui", "/ui", 308),
    Case("GET", "/ui/", "/ui/", 200),
    Case("GET", "/ui/{path:path}", "/ui/main.js", 200),
]


def tokens_text(names: Iterator[str] | list[str]) -> str:
    lines = ["# NAME ROLE SECRET"]
    for name in names:
        role = ROLES.get(name, Role.ADMIN).label
        secret = f"sha256:{digest(SECRETS[name])}"
        end = " expires=2001-01-01" if name == "old" else ""
        lines.append(f"{name} {role} {secret}{end}")
    return "\n".join(lines) + "\n"


@dataclass
class Served:
    server: ApiServer
    app: Any
    base: str
    tokens_file: Path
    source: TokenSource

    async def fresh_store(self) -> Store:
        store = new_store()
        await seed(store)
        self.app.state.ctx.store = store
        return store


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(tokens_text(list(SECRETS)))
    source = TokenSource(str(tokens_file), poll=0.0)
    app = make_app(new_store(), machine_id=M1, inspector=Inspector())
    server = ApiServer(
        app,
        ["tcp://127.0.0.1:0"],
        tokens=source,
        refused=app.state.audit.refused,
        insecure_http=True,
    )
    server.bind()
    base = "http://" + server.addresses[0][len("tcp://") :]
    # "gone" worked, then was removed from the file.
    assert source.check(SECRETS["gone"]).token is not None
    tokens_file.write_text(tokens_text([n for n in SECRETS if n != "gone"]))
    task = asyncio.create_task(server.run())
    try:
        yield Served(server, app, base, tokens_file, source)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def send(base: str, case: Case, secret: str | None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    content = None
    if case.body is not None:
        content = json.dumps(case.body).encode()
        headers["Content-Type"] = "application/json"
    # verify=False: plain HTTP, and no CA bundle to load for each of the many clients.
    async with (
        httpx.AsyncClient(base_url=base, timeout=10, verify=False) as client,
        client.stream(case.method, case.path, content=content, headers=headers) as response,
    ):
        # /events streams forever: the status and the first bytes are enough.
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if case.template.endswith("/events"):
                break
        return response.status_code, dict(response.headers), body


def error_message(status: int, body: bytes) -> str:
    data = json.loads(body)
    assert set(data) == {"error"}
    assert data["error"]["code"] == status
    return str(data["error"]["message"])


def test_every_route_has_a_role_and_every_role_a_route() -> None:
    app = make_app(new_store())
    routes = {(m, p) for m, p in routes_of(app) if m not in ("HEAD", "OPTIONS")}
    check_table(routes)
    assert set(ACCESS) <= routes, set(ACCESS) - routes
    assert {(c.method, c.template) for c in CASES} == set(ACCESS)


def test_check_table_names_a_route_without_a_role() -> None:
    with pytest.raises(RuntimeError, match="POST /fleet/v1/secret"):
        check_table([("GET", f"{V1}/units"), ("POST", f"{V1}/secret")])


CALLERS = ["viewer", "ops", "boss", None, "wrong", "gone", "old"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.template}")
async def test_route_by_caller(served: Served, case: Case) -> None:
    access = ACCESS[(case.method, case.template)]
    for caller in CALLERS:
        store = await served.fresh_store()
        before = await dump(store)
        secret = WRONG if caller == "wrong" else SECRETS.get(caller or "")
        status, headers, body = await send(served.base, case, secret)
        label = f"{case.method} {case.path} as {caller}"
        if access.role is None:
            assert status == case.ok, (label, status, body[:200])
            continue
        if caller not in ROLES:
            assert status == 401, (label, status, body[:200])
            assert headers.get("www-authenticate", "").startswith("Bearer"), label
            message = error_message(status, body)
            if caller == "old":
                assert "expired" in message and "'old'" in message, label
            for value in (*SECRETS.values(), WRONG):
                assert value not in message
        elif ROLES[caller] < access.role:
            assert status == 403, (label, status, body[:200])
            message = error_message(status, body)
            assert f"needs the {access.role.label} role" in message, (label, message)
            assert repr(caller) in message, (label, message)
        else:
            assert status == case.ok, (label, status, body[:300])
            continue
        assert await dump(store) == before, label


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"{V1}/units/new.service", {"desiredState": "launched", "options": options_of(SERVICE)}),
        (
            f"{V1}/units/web.service",
            {"desiredState": "launched", "options": options_of(SERVICE.replace("1000", "2000"))},
        ),
        (
            f"{V1}/units",
            {
                "units": [
                    {"name": "web.service", "desiredState": "inactive"},
                    {"name": "new.service", "options": options_of(SERVICE)},
                ]
            },
        ),
    ],
    ids=["create", "replace", "batch"],
)
async def test_a_unit_file_needs_admin(served: Served, path: str, body: Any) -> None:
    case = Case("PUT", "", path, 0, body)
    store = await served.fresh_store()
    before = await dump(store)
    for caller in ("viewer", "ops"):
        status, _, answer = await send(served.base, case, SECRETS[caller])
        assert status == 403, (caller, answer)
        needed = "operate" if caller == "viewer" else "admin"
        assert f"needs the {needed} role" in error_message(status, answer)
        assert await dump(store) == before
    status, _, answer = await send(served.base, case, SECRETS["boss"])
    assert status in (200, 201, 204), answer
    assert await dump(store) != before


async def test_the_token_name_is_the_author_of_a_version(served: Served) -> None:
    await served.fresh_store()
    case = Case("PUT", "", f"{V1}/units/new.service", 201, {"options": options_of(SERVICE)})
    assert (await send(served.base, case, SECRETS["boss"]))[0] == 201
    async with httpx.AsyncClient(base_url=served.base, verify=False) as client:
        r = await client.get(
            f"{V1}/units/new.service/versions",
            headers={"Authorization": f"Bearer {SECRETS['viewer']}"},
        )
    assert [(v["by"], v["remote"]) for v in r.json()["versions"]] == [("boss", "127.0.0.1")]


async def test_a_token_added_works_and_a_broken_file_refuses_every_token(
    served: Served,
) -> None:
    await served.fresh_store()
    case = Case("GET", "", f"{V1}/units", 200)
    new = leakcheck.secret("added-secret-0123456789abcdef")
    text = served.tokens_file.read_text() + f"late read sha256:{digest(new)}\n"
    served.tokens_file.write_text(text)
    assert (await send(served.base, case, new))[0] == 200
    served.tokens_file.write_text(text + "broken line\n")
    status, _, body = await send(served.base, case, SECRETS["boss"])
    assert status == 401
    message = error_message(status, body)
    assert "invalid" in message and "broken" not in message
    served.tokens_file.write_text(text)
    assert (await send(served.base, case, SECRETS["boss"]))[0] == 200


def test_route_table_matches_templates() -> None:
    table = RouteTable()
    route = table.match("HEAD", f"{V1}/units/a.service/versions/3")
    assert route is not None and route.template == f"{V1}/units/{{name}}/versions/{{version}}"
    assert table.match("GET", f"{V1}/units/a/b") is None
    assert table.public("GET", "/docs") and not table.public("GET", "/metrics")
