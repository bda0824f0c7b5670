"""fleet's error shape, and the API's answer to each error of fleetd's exception tree.

Every error the API sends is ``{"error": {"code": N, "message": "..."}}`` with
``Content-Type: application/json`` — what fleet sent and what the Go client
(googleapi) parses.  Handlers raise a ``FleetError`` (``ApiError`` for a status
no other type stands for); the handlers installed by ``install_error_handlers``
answer it with the status of the tree's one table (``fleetd.errors.http_status``,
which fleetctl reads back with ``error_for_status``), and turn FastAPI's
validation errors and Starlette's routing errors into the same shape.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from fleetd.errors import FleetError, http_status

log = logging.getLogger(__name__)


# Control characters, bidi overrides and lone surrogates: a message often quotes the
# bad input, and a client prints it on a terminal (escape sequences, reordered text)
# or cannot encode it at all.
_UNPRINTABLE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def printable(message: str) -> str:
    """``message`` with those characters written as Python escapes (``\\x1b``)."""
    return _UNPRINTABLE.sub(lambda m: ascii(m.group())[1:-1], message)


def error_body(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": printable(message)}}


async def send_error(
    send: Send, code: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with fleet's error body from an ASGI wrapper (outside FastAPI's handlers)."""
    body = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_response(code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=code, headers=headers)


def describe_validation(errors: Sequence[Any]) -> str:
    """FastAPI/pydantic validation errors as one readable line naming each field."""
    parts: list[str] = []
    for err in errors:
        if not isinstance(err, dict):
            parts.append(str(err))
            continue
        kind = err.get("type", "")
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        where = ".".join(loc)
        if kind == "json_invalid":
            ctx = err.get("ctx") or {}
            parts.append(f"unable to decode body: {ctx.get('error', 'malformed JSON')}")
            continue
        if kind == "missing" and not loc:
            parts.append("request body is required")
            continue
        msg = str(err.get("msg", "invalid value"))
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts) or "invalid request"


_STATUS_MESSAGES = {
    404: "not found",
    405: "method not allowed",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FleetError)
    async def _fleet_error(_: Request, exc: FleetError) -> JSONResponse:
        code = http_status(exc)
        if code >= 500:
            log.error("request failed: %s", exc, exc_info=exc)
        return error_response(code, str(exc) or type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, describe_validation(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else ""
        if not detail or detail in ("Not Found", "Method Not Allowed"):
            detail = _STATUS_MESSAGES.get(exc.status_code, detail or "error")
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, detail, headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error: %s", exc, exc_info=exc)
        return error_response(500, "internal error")
