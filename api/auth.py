"""Who calls the API: bearer-token authentication on TCP, and the caller of each request.

The unix socket is protected by its file mode (0600); its requests are the
caller ``unix socket`` with every right (``Identified``).  On TCP every
request must carry ``Authorization: Bearer <token>``, except the public
routes (the API's description and docs, api/access.py); a missing, unknown,
removed or expired token is a 401 in fleet's error shape, and a valid one
makes the request's caller the token's name and role (``BearerAuth``).  The
tokens come from ``api_tokens_file`` and ``api_token_file`` (fleetd/tokens.py).
Each wrapper puts the request's ``Caller`` in the ASGI scope, where
``caller_of`` (a FastAPI dependency) and ``Authorize`` (api/access.py) find it;
what the request changes is recorded under that name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from fleetd.caller import UNIDENTIFIED, Caller
from fleetd.errors import ConfigError
from fleetd.tokens import StaticTokens, Verdict, check_secret

from .access import CALLER, WRITE_METHODS, RouteTable
from .errors import send_error

TOKEN_HEADER = b"authorization"
AuditRefusal = Callable[[Scope, int], None]
"""Called with the scope and status of a write refused before reaching the app."""


class Tokens(Protocol):
    def check(self, secret: str) -> Verdict: ...


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
    """Serves every request as ``name`` with every right: the unix socket (``remote``
    False: a local process has no address), TCP with authentication off (with the
    client's address)."""

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
    check_secret(token, f"api_token_file {path}")
    return token


def bearer_token(header: str) -> str | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def header_of(scope: Scope, wanted: bytes) -> str:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return str(value.decode("latin-1"))
    return ""


class BearerAuth:
    """Refuses every HTTP request to a route that is not public unless its bearer token
    is one of ``tokens``; the others are served as the token's name and role.

    ``tokens``: a TokenSource (re-read as the files change), or one secret (an
    admin token named ``token``).  ``refused``: told of each write refused here
    (the audit log).
    """

    def __init__(
        self,
        app: ASGIApp,
        tokens: Tokens | str,
        *,
        refused: AuditRefusal | None = None,
        routes: RouteTable | None = None,
    ) -> None:
        if isinstance(tokens, str):
            if not tokens:
                raise ValueError("BearerAuth needs a token")
            tokens = StaticTokens.single(tokens)
        self.app = app
        self.tokens = tokens
        self.refused = refused
        self.routes = routes or RouteTable()

    def identify(self, given: str) -> Verdict:
        """The token ``given`` is, or why it is refused."""
        return self.tokens.check(given)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # No route takes a websocket; refuse the handshake before anything can.
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = header_of(scope, TOKEN_HEADER)
        given = bearer_token(header) if header else None
        if given is None:
            verdict = Verdict(None, "missing bearer token (Authorization: Bearer <token>)")
        else:
            verdict = self.identify(given)
        token = verdict.token
        if token is not None:
            caller = Caller(token.name, remote_of(scope), token.role)
            await self.app(with_caller(scope, caller), receive, send)
            return
        if self.routes.public(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.refused is not None and scope["method"] in WRITE_METHODS:
            self.refused(scope, 401)
        await send_error(
            send, 401, verdict.refusal, [(b"www-authenticate", b'Bearer realm="fleetd"')]
        )
