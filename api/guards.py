"""Request guards applied before routing (an ASGI wrapper).

- A request body larger than ``max_body`` (1 MiB: etcd refuses requests over
  1.5 MiB and a unit record carries the file plus its envelope) is a 413.
- A request that carries a body must say ``Content-Type: application/json``,
  else 415 (fleet answered the same).

The body is read here, checked and replayed to the application, so that
nothing downstream ever sees a partial or oversized body.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import send_error

MAX_BODY = 1024 * 1024
_BODY_METHODS = frozenset({"PUT", "PATCH", "POST"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


class RequestGuards:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await send_error(send, 400, f"invalid Content-Length: {length!r}")
                return
            if declared > self.max_body:
                await send_error(send, 413, self._too_large())
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await send_error(send, 413, self._too_large())
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        if body and not is_json(_header(scope, b"content-type")):
            await send_error(send, 415, "only acceptable Content-Type is application/json")
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"request body exceeds the limit of {self.max_body} bytes"
