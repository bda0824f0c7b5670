"""The dashboard's sessions on a listener: sign-in, sign-out, and the page's API calls.

``UiGate`` wraps a listener's app (``BearerAuth`` on TCP, ``Identified`` on the
unix socket, api/auth.py) and answers:

- ``POST /ui/login`` ``{"token": "..."}``: checks the token and keeps it in the
  session cookie (api/ui/session.py); answers the session.  Only where the
  listener takes tokens (TCP): elsewhere there is nothing to sign in to.
- ``POST /ui/logout``: forgets the cookie.
- ``GET /ui/session``: who the page acts as (``name``, ``role``), the CSRF token
  its writes must carry (``csrf``) and whether it signed in with a token
  (``token``); a 401 when a token is needed and the cookie holds none that is
  valid now.
- ``/ui/api/<path>``: the API's ``<path>`` for the page.  On TCP the cookie's
  token becomes the request's bearer token (any ``Authorization`` header the
  request had is dropped), so the listener checks it, the route table
  (api/access.py) applies its role and the audit log names it, exactly as for a
  client sending the token itself.  A write needs the session's CSRF header
  and must come from this listener's own origin (403 otherwise).

Every other request goes to the wrapped app unchanged (the page's assets are
public routes of the app, api/routes/ui.py).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from fleetd.caller import Caller, Role
from fleetd.tokens import Verdict

from ..access import CALLER, WRITE_METHODS
from ..auth import AuditRefusal, Tokens, remote_of
from ..errors import send_error
from . import session

LOGIN = "/ui/login"
LOGOUT = "/ui/logout"
SESSION = "/ui/session"
MAX_LOGIN_BODY = 4096
_METHODS = {LOGIN: ("POST",), LOGOUT: ("POST",), SESSION: ("GET", "HEAD")}
_NO_STORE = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]


@dataclass(frozen=True, slots=True)
class TokenSignIn:
    """The listener takes tokens (TCP): the page signs in with one."""

    tokens: Tokens


@dataclass(frozen=True, slots=True)
class FixedCaller:
    """Every request is this caller already (the unix socket; TCP without
    authentication): nothing to sign in to."""

    name: str
    role: Role = Role.ADMIN


Identity = TokenSignIn | FixedCaller


class UiGate:
    """See the module doc.  ``record``: told of each write this gate answers or
    refuses itself (the audit log)."""

    def __init__(self, app: ASGIApp, identity: Identity, record: AuditRefusal | None = None):
        self.app = app
        self.identity = identity
        self.record = record
        # Keys the CSRF token where there is no token to key it with.
        self._secret = secrets.token_bytes(32)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(session.UI_PATH + "/"):
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == session.API_PREFIX or path.startswith(session.API_PREFIX + "/"):
            await self._api(scope, receive, send)
        elif path not in _METHODS:
            await self.app(scope, receive, send)
        elif method not in _METHODS[path]:
            await send_error(send, 405, "method not allowed")
        elif path == LOGIN:
            await self._login(scope, receive, send)
        elif path == LOGOUT:
            await self._logout(scope, send)
        else:
            await self._session(scope, send)

    # --- the session ------------------------------------------------------

    def _secure(self, scope: Scope) -> bool:
        return scope.get("scheme") == "https"

    def _cookie_token(self, scope: Scope) -> str | None:
        value = session.cookie_value(scope.get("headers", ()))
        return session.decode_token(value) if value else None

    def _check(self, token: str | None) -> Verdict:
        if token is None or not isinstance(self.identity, TokenSignIn):
            return Verdict(None, "not signed in: the dashboard needs a token")
        return self.identity.tokens.check(token)

    def _answer(self, name: str, role: Role, key: bytes, token: bool) -> bytes:
        body = {"name": name, "role": role.label, "csrf": session.csrf_token(key), "token": token}
        return json.dumps(body).encode()

    async def _session(self, scope: Scope, send: Send) -> None:
        if isinstance(self.identity, FixedCaller):
            body = self._answer(self.identity.name, self.identity.role, self._secret, False)
            await _json(send, 200, body)
            return
        token = self._cookie_token(scope)
        verdict = self._check(token)
        if verdict.token is None or token is None:
            extra = []
            if token is not None:  # a cookie that no longer works: forget it
                extra.append((b"set-cookie", session.clear_cookie(self._secure(scope)).encode()))
            await send_error(send, 401, verdict.refusal, extra)
            return
        body = self._answer(verdict.token.name, verdict.token.role, token.encode(), True)
        await _json(send, 200, body)

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = list(scope.get("headers", ()))
        why = session.cross_origin(headers, str(scope.get("scheme", "http")))
        if why is not None:
            self._audit(scope, 403)
            await send_error(send, 403, why)
            return
        if isinstance(self.identity, FixedCaller):
            await send_error(send, 400, "this listener needs no token: the dashboard is open")
            return
        content_type = session.header(headers, b"content-type") or ""
        if content_type.split(";", 1)[0].strip().lower() != "application/json":
            await send_error(send, 415, "only acceptable Content-Type is application/json")
            return
        raw = await _read_body(receive, MAX_LOGIN_BODY)
        token = _token_in(raw)
        if token is None:
            await send_error(send, 400, 'expected {"token": "<the API token>"}')
            return
        verdict = self._check(token)
        if verdict.token is None:
            self._audit(scope, 401)
            await send_error(send, 401, verdict.refusal)
            return
        self._audit(scope, 200, token)
        body = self._answer(verdict.token.name, verdict.token.role, token.encode(), True)
        cookie = session.set_cookie(token, self._secure(scope))
        await _json(send, 200, body, [(b"set-cookie", cookie.encode())])

    async def _logout(self, scope: Scope, send: Send) -> None:
        why = session.cross_origin(scope.get("headers", ()), str(scope.get("scheme", "http")))
        if why is not None:
            await send_error(send, 403, why)
            return
        cookie = session.clear_cookie(self._secure(scope))
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [(b"set-cookie", cookie.encode()), *_NO_STORE],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    def _audit(self, scope: Scope, status: int, token: str | None = None) -> None:
        """Record a write answered here, naming the caller when ``token`` is valid."""
        if self.record is None:
            return
        if isinstance(self.identity, FixedCaller):
            caller = Caller(self.identity.name, remote_of(scope), self.identity.role)
            scope = {**scope, CALLER: caller}
        elif (found := self._check(token).token) is not None:
            scope = {**scope, CALLER: Caller(found.name, remote_of(scope), found.role)}
        self.record(scope, status)

    # --- the page's API ---------------------------------------------------

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        inner = _api_scope(scope)
        if inner is None:
            await send_error(send, 404, "not found")
            return
        write = scope["method"] in WRITE_METHODS
        headers = [(k, v) for k, v in scope.get("headers", ()) if k != b"authorization"]
        if isinstance(self.identity, FixedCaller):
            key = self._secret
            token = None
        else:
            token = self._cookie_token(scope)
            if token is None:
                if write:
                    self._audit(inner, 401)
                await send_error(
                    send,
                    401,
                    "not signed in: the dashboard needs a token",
                    [(b"www-authenticate", b'Bearer realm="fleetd"')],
                )
                return
            key = token.encode()
            headers.append((b"authorization", f"Bearer {token}".encode()))
        if write:
            why = session.csrf_refusal(
                scope.get("headers", ()),
                str(scope.get("scheme", "http")),
                session.csrf_token(key),
            )
            if why is not None:
                self._audit(inner, 403, token)
                await send_error(send, 403, why)
                return
        await self.app({**inner, "headers": headers}, receive, send)


def _api_scope(scope: Scope) -> Scope | None:
    """``scope`` with ``/ui/api`` taken off its path (None if nothing is left)."""
    path = scope["path"][len(session.API_PREFIX) :]
    if not path.startswith("/"):
        return None
    raw = scope.get("raw_path")
    prefix = session.API_PREFIX.encode()
    raw_path = raw[len(prefix) :] if isinstance(raw, bytes) and raw.startswith(prefix) else None
    return {**scope, "path": path, "raw_path": raw_path or path.encode()}


def _token_in(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    token = data.get("token") if isinstance(data, dict) else None
    if not isinstance(token, str):
        return None
    token = token.strip()
    return token if token and token.isascii() and token.isprintable() else None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request's body, or None if it is larger than ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *_NO_STORE,
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
