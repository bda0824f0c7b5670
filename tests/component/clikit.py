"""A real fleetd API (uvicorn on a unix socket, Store over MemoryRegistry) in a background
thread for the CLI tests, plus ``Autopilot``: the writes the engine and the agents make,
done the simplest way so that fleetctl's blocking commands have something to wait for.

Autopilot places every unit that is not inactive on the first machine, unless its
``[X-Fleet]`` asks for ``MachineMetadata=role=none`` (then it records why not), and
reports it running (``ExecStart=/bin/false``: failed) or loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from fleetd.api.app import create_app
from fleetd.api.inspector import SystemdInspector
from fleetd.api.serve import ApiServer

from fleetd import model
from fleetd.registry.base import EventType
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store

T = TypeVar("T")
M1 = "1a2b3c4d" + "0" * 24
M2 = "5e6f7a8b" + "0" * 24


class Autopilot:
    def __init__(self, store: Store, machine: str) -> None:
        self.store = store
        self.machine = machine
        self.lease = 0

    async def run(self) -> None:
        self.lease = await self.store.registry.grant_lease(3600)
        _, revision = await self.store.registry.get_prefix(self.store.keys.units)
        async for batch in self.store.registry.watch_prefix(self.store.keys.units, revision + 1):
            for event in batch:
                name = self.store.keys.split(event.key, self.store.keys.units)[0]
                if event.type is EventType.DELETE:
                    await self._clear(name)
                else:
                    await self._apply(self.store.unit_from(event.key, event.value))

    async def _clear(self, name: str) -> None:
        await self.store.registry.batch([self.store.unschedule_op(self.machine, name)])
        await self.store.put_states(self.machine, [], self.lease, removed=[name])

    async def _apply(self, unit: model.Unit) -> None:
        if unit.desired is model.DesiredState.INACTIVE:
            await self._clear(unit.name)
            return
        if "MachineMetadata=role=none" in unit.text:
            placement = model.Placement(
                unit.name, "no machine has role=none", ((self.machine, "role is not none"),)
            )
            await self.store.registry.batch([self.store.placement_op(placement)])
            return
        entry = model.ScheduleEntry(self.machine, unit.name, unit.hash, unit.desired)
        await self.store.registry.batch([self.store.schedule_op(entry)])
        if unit.desired is model.DesiredState.LAUNCHED:
            failed = "ExecStart=/bin/false" in unit.text
            active, sub = ("failed", "failed") if failed else ("active", "running")
        else:
            active, sub = "inactive", "dead"
        state = model.UnitState(self.machine, unit.name, unit.hash, "loaded", active, sub)
        await self.store.put_states(self.machine, [state], self.lease)


class ServerThread:
    """The API on ``unix://<tmp>/fleet.sock`` (and TCP when ``token`` is given)."""

    def __init__(
        self,
        tmp: Path,
        inspector: SystemdInspector | None = None,
        token: str | None = None,
        page_size: int = 2,
    ) -> None:
        self.page_size = page_size
        self.socket = tmp / "fleet.sock"
        self.endpoint = f"unix://{self.socket}"
        self.inspector = inspector
        self.token = token
        self.tcp_endpoint = ""
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks: list[asyncio.Task[None]] = []

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def start(self) -> ServerThread:
        self.thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        self.store = Store(MemoryRegistry())
        app = create_app(
            self.store, machine_id=M1, inspector=self.inspector, page_size=self.page_size
        )
        listen = [self.endpoint] + (["tcp://127.0.0.1:0"] if self.token else [])
        server = ApiServer(app, listen, token=self.token)
        server.bind()
        tcp = [a for a in server.addresses if a.startswith("tcp://")]
        if tcp:
            self.tcp_endpoint = "http://" + tcp[0][len("tcp://") :]
        self.tasks.append(asyncio.create_task(server.run()))
        self.tasks.append(asyncio.create_task(Autopilot(self.store, M1).run()))
        for machine, ip, host in ((M1, "10.0.0.1", "m1"), (M2, "10.0.0.2", "m2")):
            lease = await self.store.registry.grant_lease(3600)
            await self.store.register_machine(
                model.Machine(
                    machine,
                    host,
                    ip,
                    (("role", host),),
                    model.Capacity(2000, 4 << 30),
                    "0.1.0",
                ),
                lease,
            )

    def stop(self) -> None:
        async def cancel() -> None:
            for task in self.tasks:
                task.cancel()
            for task in self.tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

        self.call(cancel())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
