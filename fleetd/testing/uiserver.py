"""The API with its dashboard on loopback, for browser tests without a sandbox.

A memory registry served by the real listener (``ApiServer``: tokens, the
dashboard's session gate) over plain HTTP on 127.0.0.1, from a thread with its
own event loop, so a synchronous browser driver can use it while the test writes
to the registry (``run``).  One token per role, named after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from fleetd.api.app import create_app
from fleetd.api.serve import ApiServer
from fleetd.caller import Role
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store
from fleetd.tokens import StaticTokens, Token, digest

T = TypeVar("T")
SECRETS = {
    "read": "ui-read-secret-0123456789abcdef",
    "operate": "ui-operate-secret-0123456789abcdef",
    "admin": "ui-admin-secret-0123456789abcdef",
}


class Served:
    """``store`` served at ``base`` (``http://127.0.0.1:PORT``) until ``stop``."""

    def __init__(self, store: Store | None = None, machine_id: str = "") -> None:
        self.store = store or Store(MemoryRegistry())
        self.machine_id = machine_id
        self.base = ""
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.task: asyncio.Task[None] | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run ``coro`` on the server's loop (the registry lives there); answers its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        app = create_app(self.store, machine_id=self.machine_id)
        tokens = StaticTokens([Token(r, Role.parse(r), digest(s)) for r, s in SECRETS.items()])
        server = ApiServer(
            app,
            ["tcp://127.0.0.1:0"],
            tokens=tokens,
            refused=app.state.audit.refused,
            insecure_http=True,
        )
        server.bind()
        self.base = "http://" + server.addresses[0][len("tcp://") :]
        self.thread.start()

        async def serve() -> asyncio.Task[None]:
            return asyncio.get_running_loop().create_task(server.run())

        self.task = self.run(serve(), 10)

    def stop(self) -> None:
        async def cancel() -> None:
            if self.task is not None:
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.task

        self.run(cancel(), 30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def served(store: Store | None = None, machine_id: str = "") -> Iterator[Served]:
    """A started ``Served``, stopped at the end."""
    server = Served(store, machine_id)
    server.start()
    try:
        yield server
    finally:
        server.stop()
