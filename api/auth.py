"""Who calls the API: bearer-token authentication on TCP, and the caller of each request.

The unix socket is protected by its file mode (0600); its requests are the
caller ``unix socket`` (``Identified``).  On TCP every request must carry
``Authorization: Bearer <token>``; a missing or wrong token is a 401 in
fleet's error shape, and a right one makes the request's caller the token's
name (``BearerAuth``).  The token is read from the ``api_token_file`` named
in the configuration; it is named ``token``.  Each wrapper puts the request's
``Caller`` in the ASGI scope, where ``caller_of`` (a FastAPI dependency)
finds it; what the request changes is recorded under that name.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from fleetd.caller import UNIDENTIFIED, Caller
from fleetd.errors import ConfigError

from .errors import error_body

MIN_TOKEN_LENGTH = 16
TOKEN_NAME = "token"  # noqa: S105 - a name, not a secret
"""The name of the token of ``api_token_file`` (the caller's name in what it changes)."""
CALLER = "fleetd.caller"
"""The ASGI scope key holding the request's Caller."""


def remote_of(scope: Scope) -> str:
    """The client's address (empty on a unix socket)."""
    client = scope.get("client")
    return str(client[0]) if client and client[0] else ""


def with_caller(scope: Scope, caller: Caller) -> Scope:
    return {**scope, CALLER: caller}


async def caller_of(request: Request) -> Caller:
    """The request's caller, as the layer it came through identified it."""
    caller = request.scope.get(CALLER)
    if isinstance(caller, Caller):
        return caller
    return Caller(UNIDENTIFIED.name, remote_of(request.scope))


class Identified:
    """Serves every request as ``name``: the unix socket (``remote`` False: a local
    process has no address), TCP with authentication off (with the client's address)."""

    def __init__(self, app: ASGIApp, name: str, *, remote: bool = True) -> None:
        self.app = app
        self.name = name
        self.remote = remote

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            address = remote_of(scope) if self.remote else ""
            scope = with_caller(scope, Caller(self.name, address))
        await self.app(scope, receive, send)


def load_token(path: str) -> str:
    """The token in ``path`` (surrounding whitespace removed); ConfigError if unusable."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read api_token_file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"api_token_file {path} is not text") from exc
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"api_token_file {path}: token must be at least {MIN_TOKEN_LENGTH} characters"
        )
    if any(ch.isspace() for ch in token):
        raise ConfigError(f"api_token_file {path}: token must not contain whitespace")
    return token


def bearer_token(header: str) -> str | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class BearerAuth:
    """Refuses every HTTP request whose bearer token is not ``token``; the others are
    served as the caller ``name``."""

    def __init__(self, app: ASGIApp, token: str, name: str = TOKEN_NAME) -> None:
        if not token:
            raise ValueError("BearerAuth needs a token")
        self.app = app
        self._token = token.encode()
        self._name = name

    def identify(self, given: str) -> str | None:
        """The name of the token ``given``, or None if it is no valid token."""
        if hmac.compare_digest(given.encode("latin-1", "replace"), self._token):
            return self._name
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # No route takes a websocket; refuse the handshake before anything can.
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = ""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        given = bearer_token(header) if header else None
        if given is None:
            await _reject(send, "missing bearer token (Authorization: Bearer <token>)")
            return
        name = self.identify(given)
        if name is None:
            await _reject(send, "invalid bearer token")
            return
        await self.app(with_caller(scope, Caller(name, remote_of(scope))), receive, send)


async def _reject(send: Send, message: str) -> None:
    body = json.dumps(error_body(401, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="fleetd"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
