"""Bearer-token authentication for the TCP listener (an ASGI wrapper).

The unix socket is protected by its file mode (0600) and is served without
this wrapper; on TCP every request must carry ``Authorization: Bearer <token>``.
A missing or wrong token is a 401 in fleet's error shape.  The token is read
from the ``api_token_file`` named in the configuration.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from fleetd.errors import ConfigError

from .errors import error_body

MIN_TOKEN_LENGTH = 16


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
    """Refuses every HTTP request whose bearer token is not ``token``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("BearerAuth needs a token")
        self.app = app
        self._token = token.encode()

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
        if not hmac.compare_digest(given.encode("latin-1", "replace"), self._token):
            await _reject(send, "invalid bearer token")
            return
        await self.app(scope, receive, send)


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
