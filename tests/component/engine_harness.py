"""A Nomad-style harness: engines and fake agents over the in-memory registry.

Fake agents only do what the engine can see of an agent: register their
machine under a lease, lose it (lease revoked = machine gone) and read their
schedule.  Engines run in a TaskGroup owned by the harness; ``wait_for``
polls a condition with a deadline (no sleeping for synchronisation).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from fleetd.engine.engine import Engine, EngineSettings
from fleetd.model import Capacity, DesiredState, Machine, MachineFlags, Unit
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store
from fleetd.unitfile import UnitFile

G = 1 << 30


class ManualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def unit_text(**fleet: str) -> str:
    lines = ["[Service]", "ExecStart=/bin/sleep infinity"]
    if fleet:
        lines.append("[X-Fleet]")
        lines.extend(f"{k}={v}" for k, v in fleet.items())
    return "\n".join(lines) + "\n"


@dataclass
class FakeAgent:
    harness: Harness
    machine: Machine
    lease: int = 0

    async def register(self) -> None:
        self.lease = await self.harness.registry.grant_lease(30)
        await self.harness.store.register_machine(self.machine, self.lease)

    async def power_off(self) -> None:
        """The machine's lease ends: its presence key disappears."""
        await self.harness.registry.revoke_lease(self.lease)

    async def units(self) -> list[str]:
        return sorted(e.name for e in await self.harness.store.list_schedule(self.machine.id))


@dataclass
class Harness:
    clock: ManualClock = field(default_factory=ManualClock)
    registry: MemoryRegistry = field(init=False)
    store: Store = field(init=False)
    agents: dict[str, FakeAgent] = field(default_factory=dict)
    engines: list[Engine] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.registry = MemoryRegistry(self.clock)
        self.store = Store(self.registry)

    async def machine(
        self, mid: str, cpu: int = 4000, mem: int = 8 * G, **metadata: str
    ) -> FakeAgent:
        agent = FakeAgent(
            self, Machine(mid, metadata=tuple(metadata.items()), capacity=Capacity(cpu, mem))
        )
        await agent.register()
        self.agents[mid] = agent
        return agent

    def engine(self, machine_id: str = "e1", **settings: object) -> Engine:
        base = EngineSettings(leader_ttl=3, debounce=0.001, plan_in_thread=False)
        values = {f: getattr(base, f) for f in base.__dataclass_fields__}
        values.update(settings)
        engine = Engine(self.store, machine_id, clock=self.clock, settings=EngineSettings(**values))  # type: ignore[arg-type]
        self.engines.append(engine)
        return engine

    def start(self, engine: Engine) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(engine.run(), name="test-engine")
        self._tasks.append(task)
        return task

    async def stop(self, task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def close(self) -> None:
        for task in self._tasks:
            await self.stop(task)
        await self.registry.close()

    async def submit(
        self, name: str, text: str | None = None, desired: DesiredState = DesiredState.LAUNCHED
    ) -> None:
        text = text or unit_text()
        await self.store.put_unit(Unit(name, text, UnitFile.from_text(text).hash, desired))

    async def flag(self, machine: str, flags: MachineFlags) -> None:
        await self.store.set_machine_flags(machine, flags)

    async def where(self) -> dict[str, list[str]]:
        """unit -> machines it is scheduled on (sorted)."""
        found: dict[str, list[str]] = {}
        for entry in await self.store.list_all_schedule():
            found.setdefault(entry.name, []).append(entry.machine)
        return {name: sorted(ms) for name, ms in sorted(found.items())}

    async def reasons(self) -> dict[str, str]:
        return {p.name: p.summary for p in await self.store.list_placements()}

    async def wait_for(
        self, check: Callable[[], Awaitable[bool]], what: str, within: float = 5.0
    ) -> None:
        """Poll ``check`` (it reads the registry) until it holds; fail after ``within`` s."""
        try:
            async with asyncio.timeout(within):
                while not await check():  # noqa: ASYNC110 (the condition is registry state)
                    await asyncio.sleep(0.005)
        except TimeoutError:
            raise AssertionError(f"not reached within {within}s: {what}") from None

    async def leader(self) -> Engine:
        async def one() -> bool:
            return sum(1 for e in self.engines if e.metrics.leader) == 1

        await self.wait_for(one, "exactly one leader")
        return next(e for e in self.engines if e.metrics.leader)


@contextlib.asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    try:
        yield h
    finally:
        await h.close()
