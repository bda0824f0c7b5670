"""An httpx transport to an ASGI app whose event loop runs in another thread.

fleetctl runs each command in an event loop of its own (``asyncio.run``), while
the in-process cluster it talks to keeps running on a loop in a background
thread.  ``LoopTransport`` hands every request over to the cluster's loop, has
``httpx.ASGITransport`` serve it there, and hands the whole response back: no
socket, no server.  Responses are read to the end before they are returned, so
a response that never ends (a followed journal) never returns either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx

Served = tuple[int, list[tuple[bytes, bytes]], bytes]


class LoopTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """For async clients on any loop and for sync clients in any other thread."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._loop = loop

    async def _serve(
        self, method: str, url: httpx.URL, headers: Sequence[tuple[bytes, bytes]], body: bytes
    ) -> Served:
        request = httpx.Request(method, url, headers=list(headers), content=body)
        response = await self._asgi.handle_async_request(request)
        content = await response.aread()
        return response.status_code, response.headers.raw, content

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        served = asyncio.run_coroutine_threadsafe(
            self._serve(request.method, request.url, request.headers.raw, body), self._loop
        )
        status, headers, content = await asyncio.wrap_future(served)
        return httpx.Response(status, headers=headers, content=content, request=request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        served = asyncio.run_coroutine_threadsafe(
            self._serve(request.method, request.url, request.headers.raw, body), self._loop
        )
        status, headers, content = served.result()
        return httpx.Response(status, headers=headers, content=content, request=request)
