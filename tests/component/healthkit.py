"""Local services for health-check tests: an HTTP server whose answers the test sets, a
port nobody listens on, and ``until`` (a condition polled with a deadline)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator


class HttpService:
    """Answers ``GET <path>`` with ``status`` (``"hang"``: never answers, ``"close"``:
    closes at once, ``"garbage"``: not HTTP); counts the requests per path."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.default = "200 OK"
        self.requests: dict[str, int] = {}
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[object]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            self.requests[path] = self.requests.get(path, 0) + 1
            answer = self.status.get(path, self.default)
            if answer == "hang":
                await asyncio.sleep(3600)
            elif answer == "garbage":
                writer.write(b"hello there\r\n")
            elif answer != "close":
                body = b"x" * (1 << 20) if path == "/big" else b"ok\n"
                writer.write(
                    f"HTTP/1.1 {answer}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
                )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[HttpService]:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await self._server.wait_closed()


def closed_port() -> int:
    """A local TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
