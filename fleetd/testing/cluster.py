"""An in-process cluster: the real engine, N real agents and each machine's API over one
``MemoryRegistry``, every machine's systemd a ``FakeSystemd``.  Scenario tests drive it
through the API (as fleetctl does) and the machines' side (power off, a unit that dies),
and wait for what they expect with ``wait_for``; a pass takes milliseconds.

Time: the registry, the engine and the agents share ``clock`` (a ``ManualClock`` by
default): leases expire and the AtMostOnce grace runs out only when the test advances
it (``advance()``).  Sleeps inside the parts are real but short
(debounce and coalescing of a few milliseconds).

Supervision: every part runs as a named task of the cluster; a part that fails makes
the next ``wait_for`` (and ``close``) raise its error, so a broken agent cannot pass
for a slow one.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from fleetd.agent.agent import Agent
from fleetd.agent.fakebus import FakeConnection
from fleetd.agent.fakesystemd import FakeSystemd
from fleetd.api.app import create_app
from fleetd.api.service.inspector import UnitInspector
from fleetd.api.service.peers import Peers
from fleetd.config import Config
from fleetd.engine.engine import Engine, EngineSettings
from fleetd.model import Capacity, DesiredState, Machine, UnitState
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store
from fleetd.testing.hostactions import FakeHostActions
from fleetd.testing.inspector import FakeInspector
from fleetd.unitfile import UnitFile

log = logging.getLogger(__name__)
G = 1 << 30
Check = Callable[[], bool | Awaitable[bool]]


class ManualClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ManualWall:
    """Wall-clock seconds that move with a ManualClock (``advance`` moves both)."""

    def __init__(self, clock: ManualClock, epoch: float = 1_700_000_000.0) -> None:
        self.clock = clock
        self.epoch = epoch

    def __call__(self) -> float:
        return self.epoch + self.clock.now


class Node:
    """One machine: its fake systemd, its agent (while fleetd runs) and its API."""

    def __init__(self, cluster: Cluster, machine: Machine, inspector: UnitInspector | None) -> None:
        self.cluster = cluster
        self.machine = machine
        self.id = machine.id
        self.task = f"agent-{machine.hostname or machine.id}"
        self.root = cluster.root / machine.id
        self.systemd = FakeSystemd(self.root, clock=cluster.clock)
        self.agent: Agent | None = None
        self.actions = FakeHostActions(self)
        self.boots = 1
        self.app = create_app(
            cluster.store,
            machine_id=machine.id,
            inspector=inspector or FakeInspector(self.systemd),
            peers=Peers(transport_for=cluster.transport_for),
            page_size=cluster.page_size,
            clock=cluster.wall,
            scheduling=cluster.settings,
        )

    @property
    def running(self) -> bool:
        return self.agent is not None

    def start(self) -> None:
        """Start fleetd's agent on this machine (it adopts what is already there)."""
        c = self.cluster
        config = Config(
            units_directory=str(self.root / "run/fleet/units"),
            agent_ttl=c.ttl,
            metadata=self.machine.metadata,
        )
        self.agent = Agent(
            config=config,
            store=c.store,
            clock=c.clock,
            machine=self.machine,
            lease_file=self.root / "run/fleet/lease",
            units=FakeConnection(self.systemd, job_timeout=c.job_timeout),
            host_actions=self.actions,
        )
        c.spawn(self.task, self._run(self.agent))

    async def _run(self, agent: Agent) -> None:
        try:
            await agent.run()  # returns once the machine shut down
        finally:
            if self.agent is agent:
                self.agent = None

    async def stop(self) -> None:
        """Stop fleetd (a restart or a crash): its units keep running, its lease stays."""
        await self.cluster.cancel(self.task)
        self.agent = None

    async def restart(self) -> None:
        await self.stop()
        self.start()

    async def power_off(self) -> None:
        """The machine is gone: fleetd and every unit stop at once, its lease ends."""
        lease = self.agent.presence.lease if self.agent is not None else 0
        await self.stop()
        self.systemd.power_off()
        if lease:
            await self.cluster.registry.revoke_lease(lease)

    def shutdown(self) -> None:
        """A clean shutdown: systemd begins to stop, the agent revokes its lease."""
        self.systemd.shutdown()

    def boot(self) -> None:
        """Boot the machine again: a new boot id, fleetd started."""
        self.boots += 1
        self.machine = replace(self.machine, boot_id=f"{self.id}-boot{self.boots}")
        self.systemd.boot()
        self.start()

    async def reboot(self) -> None:
        """What ``systemctl reboot`` does: a clean shutdown (the agent revokes its lease),
        every process ends, a fresh /run, a new boot."""
        self.shutdown()
        await self.cluster.wait_for(
            lambda: self.agent is None and not self.cluster.has(self.task),
            f"{self.id}'s agent stopped",
        )
        self.systemd.power_off()
        self.boot()

    def active(self, name: str) -> bool:
        unit = self.systemd.unit(name)
        return unit is not None and unit.active_state == "active"


class Cluster:
    def __init__(
        self,
        root: Path,
        *,
        clock: Callable[[], float] | None = None,
        wall: Callable[[], float] | None = None,
        ttl: float = 30.0,
        job_timeout: float = 5.0,
        page_size: int = 100,
        **engine: Any,
    ) -> None:
        """``engine``: ``EngineSettings`` fields to override (debounce and leader TTL are
        set for tests already); ``wall``: the wall clock of the engine and the APIs
        (what unit versions and rollouts record; default: the real one)."""
        self.root = root
        self.clock = clock or ManualClock()
        self.wall = wall or time.time
        self.ttl = ttl
        self.job_timeout = job_timeout
        self.page_size = page_size
        self.registry = MemoryRegistry(self.clock)
        self.store = Store(self.registry)
        settings: dict[str, Any] = {"debounce": 0.001, "plan_in_thread": False}
        settings["leader_ttl"] = 3600
        settings.update(engine)
        self.settings = EngineSettings(**settings)
        self.engine: Engine | None = None
        self.nodes: dict[str, Node] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._failures: list[tuple[str, BaseException]] = []
        self._clients: list[httpx.AsyncClient] = []

    # --- parts ------------------------------------------------------------

    def spawn(self, name: str, coro: Awaitable[None]) -> None:
        """Run ``coro`` as the cluster's task ``name``; an error in it fails the cluster."""
        if name in self._tasks:
            raise RuntimeError(f"{name} is already running")
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks[name] = task
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        if self._tasks.get(task.get_name()) is task:
            del self._tasks[task.get_name()]
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.error("cluster part %s failed", task.get_name(), exc_info=error)
            self._failures.append((task.get_name(), error))

    def has(self, name: str) -> bool:
        """Whether the cluster's task ``name`` runs."""
        return name in self._tasks

    async def cancel(self, name: str) -> None:
        task = self._tasks.get(name)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def check(self) -> None:
        """Fail (AssertionError, caused by its error) if a part of the cluster failed."""
        if self._failures:
            name, error = self._failures[0]
            raise AssertionError(f"cluster part {name} failed: {error!r}") from error

    async def add_machine(
        self,
        machine_id: str,
        *,
        hostname: str = "",
        ip: str = "",
        metadata: Sequence[tuple[str, str]] = (),
        cpu: int = 2000,
        memory: int = 4 * G,
        inspector: UnitInspector | None = None,
        start: bool = True,
    ) -> Node:
        machine = Machine(
            machine_id,
            hostname or machine_id[:8],
            ip,
            tuple(metadata),
            Capacity(cpu, memory),
            "0.1.0",
            boot_id=f"{machine_id}-boot1",
        )
        node = self.nodes[machine_id] = Node(self, machine, inspector)
        if start:
            node.start()
        return node

    def start_engine(self) -> Engine:
        """The engine candidate (one is enough: leadership has its own tests)."""
        self.engine = Engine(
            self.store, "engine", clock=self.clock, wall=self.wall, settings=self.settings
        )
        self.spawn("engine", self.engine.run())
        return self.engine

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()
        for name in list(self._tasks):
            await self.cancel(name)
        await self.registry.close()
        self.check()

    # --- the API ----------------------------------------------------------

    def transport_for(self, machine: Machine) -> httpx.AsyncBaseTransport:
        """The way to ``machine``'s API (peers forward status and journal through it)."""
        return httpx.ASGITransport(app=self.nodes[machine.id].app)

    def client(self, machine_id: str | None = None) -> httpx.AsyncClient:
        """An HTTP client of a machine's API (the first machine's by default)."""
        node = self.nodes[machine_id] if machine_id else next(iter(self.nodes.values()))
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=node.app), base_url="http://fleetd/fleet/v1"
        )
        self._clients.append(client)
        return client

    async def submit(
        self,
        name: str,
        text: str,
        desired: DesiredState = DesiredState.LAUNCHED,
        *,
        replace: bool = False,
    ) -> None:
        """``PUT /units/<name>`` with the file's options and ``desired``."""
        options = UnitFile.from_text(text).to_dicts()
        body = {"name": name, "desiredState": desired.value, "options": options}
        params = {"replace": "true"} if replace else {}
        response = await self.api.put(f"/units/{name}", json=body, params=params)
        response.raise_for_status()

    async def set_desired(self, name: str, desired: DesiredState) -> None:
        response = await self.api.put(
            f"/units/{name}", json={"name": name, "desiredState": desired.value}
        )
        response.raise_for_status()

    async def destroy(self, name: str) -> None:
        (await self.api.delete(f"/units/{name}")).raise_for_status()

    @property
    def api(self) -> httpx.AsyncClient:
        if not self._clients:
            self.client()
        return self._clients[0]

    # --- what happened ----------------------------------------------------

    async def where(self) -> dict[str, list[str]]:
        """unit -> the machines it is scheduled to (sorted)."""
        found: dict[str, list[str]] = {}
        for entry in await self.store.list_all_schedule():
            found.setdefault(entry.name, []).append(entry.machine)
        return {name: sorted(ms) for name, ms in sorted(found.items())}

    async def states(self, name: str) -> dict[str, UnitState]:
        """machine -> the state its agent published for ``name``."""
        return {s.machine: s for s in await self.store.list_states() if s.name == name}

    def running(self, name: str) -> list[str]:
        """The machines whose systemd has ``name`` active, in the order they were added."""
        return [mid for mid, node in self.nodes.items() if node.active(name)]

    async def reason(self, name: str) -> str:
        placement = await self.store.get_placement(name)
        return placement.summary if placement is not None else ""

    async def wait_for(self, check: Check, what: str, within: float = 5.0) -> None:
        """Poll ``check`` until it holds; AssertionError naming ``what`` after ``within`` s."""
        deadline = time.monotonic() + within
        while True:
            self.check()
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached within {within}s: {what}")
            await asyncio.sleep(0.002)

    def advance(self, seconds: float) -> None:
        """Move the ``ManualClock`` on, then let leases expire and the engine and the agents'
        health checks look at their timers at once."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("only a cluster on a ManualClock can advance time")
        self.clock.advance(seconds)
        self.registry.expire_leases()
        if self.engine is not None:
            self.engine.trigger()
        for node in self.nodes.values():
            if node.agent is not None:
                node.agent.health.nudge()


@contextlib.asynccontextmanager
async def cluster(
    root: Path, machines: int = 2, *, engine: bool = True, **options: Any
) -> AsyncIterator[Cluster]:
    """A running cluster of ``machines`` machines (m1, m2... with ips 10.0.0.N)."""
    c = Cluster(root, **options)
    try:
        for i in range(1, machines + 1):
            await c.add_machine(f"m{i}", hostname=f"m{i}", ip=f"10.0.0.{i}")
        if engine:
            c.start_engine()
        yield c
    finally:
        await c.close()
