"""The dashboard's browser sessions (api/ui/gate.py, api/ui/session.py), without a browser.

The gate sits in front of a listener's authentication exactly as ``ApiServer`` puts it
there: on TCP the token comes once to ``POST /ui/login`` and is kept in an HttpOnly,
SameSite=Strict cookie scoped to ``/ui``; the page's API calls under ``/ui/api`` are
the token's own requests; a write needs the session's CSRF header and the listener's
own origin.  On the unix socket there is nothing to sign in to, but writes still need
the CSRF header.  Every refused write changes nothing and is audited.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import leakcheck
import pytest
from apikit import make_app, new_store
from hostile import M1, dump, seed

from fleetd.api.access import CALLER
from fleetd.api.auth import BearerAuth, Identified
from fleetd.api.serve import ApiServer
from fleetd.api.ui import session
from fleetd.api.ui.gate import FixedCaller, TokenSignIn, UiGate
from fleetd.caller import UNIX_SOCKET, Caller, Role
from fleetd.registry.store import Store
from fleetd.tokens import StaticTokens, Token, digest

SECRETS = {
    "viewer": (leakcheck.secret("read-secret-0123456789abcdef"), Role.READ),
    "ops": (leakcheck.secret("operate-secret-0123456789abcdef"), Role.OPERATE),
    "boss": (leakcheck.secret("admin-secret-0123456789abcdef"), Role.ADMIN),
}
ORIGIN = "http://fleet"
UNIT = "/fleet/v1/units/web.service"
STOP = {"desiredState": "loaded"}


def tokens() -> StaticTokens:
    return StaticTokens([Token(n, role, digest(s)) for n, (s, role) in SECRETS.items()])


class Audit:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, str, int]] = []

    def __call__(self, scope: dict[str, Any], status: int) -> None:
        caller = scope.get(CALLER)
        name = caller.name if isinstance(caller, Caller) else "-"
        self.records.append((name, scope["method"], scope["path"], status))


class Page:
    """A client of the gate as a browser page would be (cookies sent by hand)."""

    def __init__(self, client: httpx.AsyncClient, store: Store, audit: Audit) -> None:
        self.client = client
        self.store = store
        self.audit = audit
        self.cookie = ""
        self.csrf = ""

    async def login(self, name: str) -> httpx.Response:
        response = await self.client.post(
            "/ui/login",
            json={"token": SECRETS[name][0]},
            headers={"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"},
        )
        self.client.cookies.clear()  # sent by hand, so each test says what it sends
        if response.status_code == 200:
            self.cookie = response.headers["set-cookie"].split(";", 1)[0]
            self.csrf = response.json()["csrf"]
        return response

    def headers(self, csrf: bool = True, **extra: str) -> dict[str, str]:
        headers = {"Cookie": self.cookie, "Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}
        if csrf:
            headers[session.CSRF_HEADER] = self.csrf
        headers.update(extra)
        return {k: v for k, v in headers.items() if v}


def gate_for(app: Any, audit: Audit, unix: bool = False) -> UiGate:
    if unix:
        inner = Identified(app, UNIX_SOCKET.name, remote=False)
        return UiGate(inner, FixedCaller(UNIX_SOCKET.name), audit)
    auth = BearerAuth(app, tokens(), refused=audit)
    return UiGate(auth, TokenSignIn(auth.tokens), audit)


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    store = new_store()
    await seed(store)
    audit = Audit()
    app = make_app(store, machine_id=M1)
    transport = httpx.ASGITransport(app=gate_for(app, audit))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
        yield Page(client, store, audit)


@pytest.fixture
async def socket_page() -> AsyncIterator[Page]:
    store = new_store()
    await seed(store)
    audit = Audit()
    app = make_app(store, machine_id=M1)
    transport = httpx.ASGITransport(app=gate_for(app, audit, unix=True))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
        page = Page(client, store, audit)
        page.csrf = (await client.get("/ui/session")).json()["csrf"]
        yield page


def cookie_attributes(set_cookie: str) -> dict[str, str]:
    parts = [p.strip() for p in set_cookie.split(";")]
    return {k.lower(): v for k, _, v in (p.partition("=") for p in parts[1:])}


def message(response: httpx.Response) -> str:
    body = response.json()
    assert body["error"]["code"] == response.status_code
    return str(body["error"]["message"])


# --- signing in --------------------------------------------------------------------


async def test_login_keeps_the_token_in_an_httponly_strict_cookie_scoped_to_ui(page: Page) -> None:
    response = await page.login("ops")
    assert response.status_code == 200
    body = response.json()
    assert body == {"name": "ops", "role": "operate", "csrf": page.csrf, "token": True}
    secret = SECRETS["ops"][0]
    assert secret not in response.text
    assert response.headers["cache-control"] == "no-store"
    set_cookie = response.headers["set-cookie"]
    name, _, value = set_cookie.split(";", 1)[0].partition("=")
    assert name == session.COOKIE and session.decode_token(value) == secret
    attributes = cookie_attributes(set_cookie)
    assert attributes["path"] == "/ui"
    assert attributes["samesite"] == "Strict"
    assert "httponly" in attributes
    assert int(attributes["max-age"]) == session.MAX_AGE
    assert "secure" not in attributes  # plain HTTP: a Secure cookie would never come back
    assert page.audit.records[-1] == ("ops", "POST", "/ui/login", 200)


async def test_over_https_the_cookie_is_secure() -> None:
    app = make_app(new_store())
    transport = httpx.ASGITransport(app=gate_for(app, Audit()))
    async with httpx.AsyncClient(transport=transport, base_url="https://fleet") as client:
        response = await client.post(
            "/ui/login", json={"token": SECRETS["boss"][0]}, headers={"Origin": "https://fleet"}
        )
    assert response.status_code == 200
    assert "secure" in cookie_attributes(response.headers["set-cookie"])


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        ({"token": leakcheck.secret("wrong-secret-0123456789abcdef")}, {}, 401, "invalid"),
        ({"token": SECRETS["boss"][0]}, {"Origin": "http://evil.example"}, 403, "origin"),
        ({"token": SECRETS["boss"][0]}, {"Origin": "http://fleet:8080"}, 403, "origin"),
        ({"token": SECRETS["boss"][0]}, {"Sec-Fetch-Site": "cross-site"}, 403, "cross-site"),
        ({"token": SECRETS["boss"][0]}, {"Sec-Fetch-Site": "same-site"}, 403, "same-site"),
        ({"secret": SECRETS["boss"][0]}, {}, 400, "token"),
        ({"token": 42}, {}, 400, "token"),
        ({"token": "x" * 5000}, {}, 400, "token"),
    ],
    ids=["wrong-token", "other-site", "other-port", "cross-site", "same-site", "no-token",
         "not-a-string", "too-long"],
)  # fmt: skip
async def test_a_refused_login_sets_no_cookie(
    page: Page, body: Any, headers: dict[str, str], status: int, words: str
) -> None:
    response = await page.client.post("/ui/login", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert words in message(response)
    assert "set-cookie" not in response.headers
    for secret, _ in SECRETS.values():
        assert secret not in response.text


async def test_login_takes_json_only_and_post_only(page: Page) -> None:
    form = await page.client.post("/ui/login", content=b"token=x", headers={"Content-Type": "x"})
    assert form.status_code == 415
    assert (await page.client.get("/ui/login")).status_code == 405
    assert (await page.client.get("/ui/logout")).status_code == 405
    assert (await page.client.post("/ui/session")).status_code == 405


async def test_the_session_comes_from_the_cookie(page: Page) -> None:
    assert (await page.client.get("/ui/session")).status_code == 401
    await page.login("viewer")
    answer = await page.client.get("/ui/session", headers={"Cookie": page.cookie})
    assert answer.status_code == 200
    assert answer.json() == {"name": "viewer", "role": "read", "csrf": page.csrf, "token": True}
    stale = f"{session.COOKIE}={session.encode_token('removed-secret-0123456789')}"
    refused = await page.client.get("/ui/session", headers={"Cookie": stale})
    assert refused.status_code == 401
    # A cookie that no longer works is forgotten.
    assert cookie_attributes(refused.headers["set-cookie"])["max-age"] == "0"


async def test_logout_forgets_the_cookie(page: Page) -> None:
    await page.login("boss")
    response = await page.client.post("/ui/logout", headers=page.headers(csrf=False))
    assert response.status_code == 204
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{session.COOKIE}=;")
    assert cookie_attributes(set_cookie)["max-age"] == "0"
    assert cookie_attributes(set_cookie)["path"] == "/ui"
    other = await page.client.post("/ui/logout", headers={"Origin": "http://evil.example"})
    assert other.status_code == 403


# --- the page's API --------------------------------------------------------------


async def test_the_cookie_stands_for_the_token_only_under_ui_api(page: Page) -> None:
    await page.login("viewer")
    listed = await page.client.get("/ui/api/fleet/v1/units", headers={"Cookie": page.cookie})
    assert listed.status_code == 200
    assert [u["name"] for u in listed.json()["units"]] == ["app@.service", "web.service"]
    # The same cookie on the API itself is no token.
    direct = await page.client.get("/fleet/v1/units", headers={"Cookie": page.cookie})
    assert direct.status_code == 401
    # Without the cookie the page's API is closed too.
    bare = await page.client.get("/ui/api/fleet/v1/units")
    assert bare.status_code == 401 and "not signed in" in message(bare)
    assert (await page.client.get("/ui/api", headers={"Cookie": page.cookie})).status_code == 404


async def test_a_page_write_with_the_csrf_header_and_own_origin_is_done(
    page: Page, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fleetd.audit")
    await page.login("ops")
    response = await page.client.put(f"/ui/api{UNIT}", json=STOP, headers=page.headers())
    assert response.status_code == 204, response.text
    unit = await page.store.get_unit("web.service")
    assert unit is not None and unit.desired.value == "loaded"
    # The app's own audit log names the token, as for a client that sent it itself.
    assert any(
        f"caller=ops remote=127.0.0.1 method=PUT path={UNIT}" in r.getMessage()
        and "status=204" in r.getMessage()
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({session.CSRF_HEADER: ""}, "needs the x-fleetd-csrf header"),
        ({session.CSRF_HEADER: "not-the-right-one"}, "does not match"),
        ({"Origin": "http://evil.example"}, "origin"),
        ({"Origin": "https://fleet"}, "origin"),
        ({"Sec-Fetch-Site": "cross-site"}, "cross-site"),
        ({"Sec-Fetch-Site": "same-site"}, "same-site"),
    ],
    ids=["no-csrf", "wrong-csrf", "other-site", "other-scheme", "cross-site", "same-site"],
)
async def test_a_forged_page_write_is_refused_and_changes_nothing(
    page: Page, change: dict[str, str], words: str
) -> None:
    await page.login("boss")
    before = await dump(page.store)
    headers = {**page.headers(), **change}
    headers = {k: v for k, v in headers.items() if v}
    for method, path, body in (
        ("PUT", UNIT, STOP),
        ("DELETE", UNIT, None),
        ("POST", f"/fleet/v1/machines/{M1}/drain", None),
    ):
        response = await page.client.request(method, f"/ui/api{path}", json=body, headers=headers)
        assert response.status_code == 403, (method, path, response.text)
        assert words in message(response)
        assert page.audit.records[-1] == ("boss", method, path, 403)
    assert await dump(page.store) == before


async def test_the_csrf_token_of_another_session_does_not_do(page: Page) -> None:
    await page.login("viewer")
    viewer_csrf = page.csrf
    await page.login("boss")
    assert viewer_csrf != page.csrf
    headers = page.headers(**{session.CSRF_HEADER: viewer_csrf})
    response = await page.client.put(f"/ui/api{UNIT}", json=STOP, headers=headers)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "needed"),
    [
        ("viewer", "PUT", UNIT, STOP, "operate"),
        ("viewer", "POST", f"/fleet/v1/machines/{M1}/cordon", None, "operate"),
        ("ops", "DELETE", UNIT, None, "admin"),
    ],
)
async def test_the_role_of_the_token_applies_to_the_page(
    page: Page, name: str, method: str, path: str, body: Any, needed: str
) -> None:
    await page.login(name)
    before = await dump(page.store)
    response = await page.client.request(
        method, f"/ui/api{path}", json=body, headers=page.headers()
    )
    assert response.status_code == 403
    assert f"needs the {needed} role" in message(response) and repr(name) in message(response)
    assert await dump(page.store) == before


async def test_an_authorization_header_does_not_outrank_the_cookie(page: Page) -> None:
    await page.login("viewer")
    headers = page.headers(Authorization=f"Bearer {SECRETS['boss'][0]}")
    response = await page.client.put(f"/ui/api{UNIT}", json=STOP, headers=headers)
    assert response.status_code == 403 and "'viewer'" in message(response)


async def test_the_csrf_token_is_the_same_on_every_fleetd_and_after_a_restart() -> None:
    answers = []
    for _ in range(2):
        app = make_app(new_store())
        transport = httpx.ASGITransport(app=gate_for(app, Audit()))
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
            login = await client.post("/ui/login", json={"token": SECRETS["ops"][0]})
            answers.append(login.json()["csrf"])
    assert answers[0] == answers[1] == session.csrf_token(SECRETS["ops"][0].encode())


# --- the unix socket -------------------------------------------------------------


async def test_the_unix_socket_needs_no_token_but_writes_need_the_csrf_header(
    socket_page: Page,
) -> None:
    page = socket_page
    answer = (await page.client.get("/ui/session")).json()
    assert answer == {"name": "unix socket", "role": "admin", "csrf": page.csrf, "token": False}
    login = await page.client.post("/ui/login", json={"token": SECRETS["boss"][0]})
    assert login.status_code == 400 and "needs no token" in message(login)
    listed = await page.client.get("/ui/api/fleet/v1/units")
    assert listed.status_code == 200
    before = await dump(page.store)
    forged = await page.client.put(f"/ui/api{UNIT}", json=STOP, headers={"Origin": ORIGIN})
    assert forged.status_code == 403
    assert page.audit.records[-1] == ("unix socket", "PUT", UNIT, 403)
    assert await dump(page.store) == before
    done = await page.client.put(f"/ui/api{UNIT}", json=STOP, headers=page.headers())
    assert done.status_code == 204


async def test_each_unix_socket_gate_has_its_own_csrf_secret() -> None:
    app = make_app(new_store())
    found = set()
    for _ in range(2):
        transport = httpx.ASGITransport(app=gate_for(app, Audit(), unix=True))
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
            found.add((await client.get("/ui/session")).json()["csrf"])
    assert len(found) == 2


# --- pure parts ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["", "%%%", "not base64!", "AA", session.encode_token("a\x1bb"), "A" * 5000]
)
def test_a_cookie_that_is_not_ours_holds_no_token(value: str) -> None:
    assert session.decode_token(value) is None


def test_cookie_values_round_trip_and_are_cookie_safe() -> None:
    token = 'a;b,c=d"e\\f g~!' + "x" * 20
    value = session.encode_token(token)
    assert not set(value) & set(';, "\\')
    assert session.decode_token(value) == token
    headers = [(b"cookie", f"other=1; {session.COOKIE}={value}; x=y".encode())]
    assert session.cookie_value(headers) == value


# --- through the real listener ---------------------------------------------------


async def test_api_server_puts_the_gate_in_front_of_tcp_and_the_socket(tmp_path: Any) -> None:
    store = new_store()
    await seed(store)
    app = make_app(store, machine_id=M1)
    socket_path = tmp_path / "api.sock"
    server = ApiServer(
        app,
        [f"unix://{socket_path}", "tcp://127.0.0.1:0"],
        tokens=tokens(),
        refused=app.state.audit.refused,
        insecure_http=True,
    )
    server.bind()
    base = "http://" + server.addresses[1][len("tcp://") :]
    task = asyncio.create_task(server.run())
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            login = await client.post(
                "/ui/login", json={"token": SECRETS["ops"][0]}, headers={"Origin": base}
            )
            assert login.status_code == 200
            csrf = login.json()["csrf"]
            # httpx keeps the cookie and sends it back under /ui only, as a browser does.
            assert (await client.get("/ui/api/fleet/v1/units")).status_code == 200
            assert (await client.get("/fleet/v1/units")).status_code == 401
            write = await client.put(
                f"/ui/api{UNIT}",
                json=STOP,
                headers={session.CSRF_HEADER: csrf, "Origin": base},
            )
            assert write.status_code == 204
        transport = httpx.AsyncHTTPTransport(uds=str(socket_path))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as local:
            answer = await local.get("/ui/session")
            assert answer.json()["name"] == "unix socket"
            assert (await local.put(f"/ui/api{UNIT}", json=STOP)).status_code == 403
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert answer.json()["token"] is False
