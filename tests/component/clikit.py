"""fleetctl's test server: an in-process cluster (fleetd/testing/cluster.py: the real
engine and two real agents over the in-memory registry and fake systemd, each machine
with its API) on an event loop in a background thread.

fleetctl reaches the first machine's API at ``endpoint`` (``unix://<tmp>/fleet.sock``)
without a socket: the endpoint is mounted in ``fleetd.cli.backend.IN_PROCESS`` and
served by ``LoopTransport`` (httpx's ASGITransport on the cluster's loop), with the
caller the unix socket's.  Only with a
``token`` is there a real server: uvicorn on ``tcp_endpoint`` with bearer
authentication, the part that tests of tokens are about.

Machines: ``M1`` (m1, 10.0.0.1, role=m1) and ``M2`` (m2, 10.0.0.2, role=m2), 2 CPUs
and 4G each.  Units behave as their files say (fleetd/agent/unitspec.py):
``ExecStart=/bin/false`` fails, ``/bin/sleep`` runs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx

from fleetd.api.auth import Identified
from fleetd.api.serve import ApiServer
from fleetd.api.service.inspector import UnitInspector
from fleetd.caller import UNIX_SOCKET
from fleetd.cli import backend
from fleetd.testing.cluster import Cluster
from fleetd.testing.transport import LoopTransport

T = TypeVar("T")
M1 = "1a2b3c4d" + "0" * 24
M2 = "5e6f7a8b" + "0" * 24


class ServerThread:
    """The cluster's API at ``endpoint`` (and on TCP at ``tcp_endpoint`` when ``token``)."""

    def __init__(
        self,
        tmp: Path,
        inspector: UnitInspector | None = None,
        token: str | None = None,
        page_size: int = 2,
    ) -> None:
        self.tmp = tmp
        self.page_size = page_size
        self.socket = tmp / "fleet.sock"
        self.endpoint = f"unix://{self.socket}"
        self.inspector = inspector
        self.token = token
        self.tcp_endpoint = ""
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the cluster's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def start(self) -> ServerThread:
        self.thread.start()
        self.call(self._start())
        # served as the unix socket listener serves it: the caller is "unix socket"
        app = Identified(self.cluster.nodes[M1].app, UNIX_SOCKET.name, remote=False)
        transport = LoopTransport(app, self.loop)
        backend.IN_PROCESS[self.endpoint] = lambda: transport
        return self

    async def _start(self) -> None:
        cluster = self.cluster = Cluster(
            self.tmp / "cluster",
            clock=time.monotonic,
            page_size=self.page_size,
            drain_interval=0.01,
            stop_poll=0.01,
        )
        self.store = cluster.store
        for machine, ip, host in ((M1, "10.0.0.1", "m1"), (M2, "10.0.0.2", "m2")):
            await cluster.add_machine(
                machine,
                hostname=host,
                ip=ip,
                metadata=(("role", host),),
                inspector=self.inspector if machine == M1 else None,
            )
        await cluster.wait_for(self._registered, "both machines registered")
        cluster.start_engine()
        if self.token:
            server = ApiServer(
                cluster.nodes[M1].app, ["tcp://127.0.0.1:0"], tokens=self.token, insecure_http=True
            )
            server.bind()
            self.tcp_endpoint = "http://" + server.addresses[0][len("tcp://") :]
            cluster.spawn("api-tcp", server.run())

    async def _registered(self) -> bool:
        return len(await self.store.list_machines()) == 2

    def client(self) -> httpx.Client:
        """A plain HTTP client of M1's API (``/metrics``, ``/fleet/v1/...``)."""
        return httpx.Client(transport=LoopTransport(self.cluster.nodes[M1].app, self.loop),
                            base_url="http://fleetd")  # fmt: skip

    def stop(self) -> None:
        backend.IN_PROCESS.pop(self.endpoint, None)
        try:
            self.call(self.cluster.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()
