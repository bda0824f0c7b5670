"""The engine inside real fleetd processes on the sandbox (3 machines, agent TTL 10 s,
so the leader lease is 3 s): placement with reasons, machine power-off, drain, and
leader failover (SIGKILL) and fencing of a paused (SIGSTOP) leader."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from fleetd.model import DesiredState, MachineFlags, Unit
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Store
from fleetd.sandbox.cluster import Sandbox
from fleetd.sandbox.spec import API_PORT
from fleetd.unitfile import UnitFile

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(300)]

SLEEPER = "[Unit]\nDescription=engine test {tag}\n\n[Service]\nExecStart=/bin/sleep 100000\n"
LEADER_TTL = 3.0  # a third of the sandbox's agent TTL


async def until(check: Callable[[], Awaitable[object]], within: float, what: str) -> object:
    """Poll ``check`` (registry reads) until truthy; fail after ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while not (result := await check()):  # noqa: ASYNC110 (registry state)
                await asyncio.sleep(0.1)
            return result
    except TimeoutError:
        raise AssertionError(f"not within {within}s: {what}") from None


class Cluster:
    def __init__(self, sandbox: Sandbox, store: Store) -> None:
        self.sandbox = sandbox
        self.store = store
        self.tag = uuid.uuid4().hex[:6]
        self.names: list[str] = []
        self.by_id = {m.machine_id: m.name for m in sandbox.machines}

    async def submit(self, what: str, fleet: str = "") -> str:
        name = f"eng-{self.tag}-{what}.service"
        text = SLEEPER.format(tag=what) + (f"\n[X-Fleet]\n{fleet}\n" if fleet else "")
        unit = Unit(name, text, UnitFile.from_text(text).hash, DesiredState.LAUNCHED)
        await self.store.put_unit(unit)
        self.names.append(name)
        return name

    async def where(self, name: str) -> list[str]:
        """Sandbox machine names ``name`` is scheduled on."""
        entries = await self.store.list_all_schedule()
        return sorted(self.by_id.get(e.machine, e.machine) for e in entries if e.name == name)

    async def active_on(self, name: str) -> str | None:
        """The one sandbox machine whose schedule and systemd both say ``name`` is active."""
        where = await self.where(name)
        if len(where) != 1:
            return None
        machine_id = self.sandbox.machine(where[0]).machine_id
        states = await self.store.list_states(machine_id)
        if any(s.name == name and s.active_state == "active" for s in states):
            return where[0]
        return None

    async def all_active(self) -> dict[str, str] | None:
        found = {name: await self.active_on(name) for name in self.names}
        return found if all(found.values()) else None  # type: ignore[return-value]

    async def leader(self) -> tuple[str, int] | None:
        current = await self.store.current_leader()
        return (
            (self.by_id.get(current.machine, current.machine), current.revision)
            if current
            else None
        )

    async def metrics(self, machine: str) -> dict[str, float]:
        """The Prometheus samples of fleetd's API on ``machine`` (TCP, with the token)."""
        url = f"http://{self.sandbox.machine(machine).ip}:{API_PORT}/metrics"
        token = self.sandbox.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(url, headers=headers)
        response.raise_for_status()
        samples = {}
        for line in response.text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                samples[key] = float(value)
        return samples

    async def cleanup(self) -> None:
        for name in self.names:
            await self.store.delete_unit(name)
        for m in self.sandbox.machines:
            await self.store.set_machine_flags(m.machine_id, MachineFlags())


@pytest.fixture
async def cluster(sandbox: Sandbox) -> AsyncIterator[Cluster]:
    registry = EtcdRegistry(list(sandbox.etcd_endpoints), timeout=5.0)
    c = Cluster(sandbox, Store(registry, Keys()))
    try:
        yield c
    finally:
        for m in sandbox.machines:
            if not sandbox.running(m.name):
                sandbox.boot(m.name)
        await c.cleanup()
        await registry.close()


async def test_units_run_and_an_unplaceable_unit_shows_its_reasons(cluster: Cluster) -> None:
    for i in range(3):
        await cluster.submit(f"run{i}")
    await until(cluster.all_active, 60, "three units active")
    name = await cluster.submit("nowhere", "MachineMetadata=role=nonexistent")
    cluster.names.remove(name)  # not expected to run

    async def reason() -> str | None:
        placement = await cluster.store.get_placement(name)
        return placement.summary if placement else None

    text = await until(reason, 20, "a placement reason")
    assert "metadata role=nonexistent wanted, role not set" in str(text)
    for m in cluster.sandbox.machines:
        assert m.machine_id in str(text)
    await cluster.store.delete_unit(name)


async def test_powered_off_machine_units_run_elsewhere(cluster: Cluster) -> None:
    for i in range(4):
        await cluster.submit(f"move{i}")
    placed = await until(cluster.all_active, 60, "units active")
    assert isinstance(placed, dict)
    victim = next(iter(placed.values()))
    moved = [n for n, m in placed.items() if m == victim]
    cluster.sandbox.poweroff(victim)

    async def elsewhere() -> bool:
        now = await cluster.all_active()
        return bool(now) and all(now[n] != victim for n in moved)  # type: ignore[index]

    # The lease expires within the agent TTL (10 s); the engine moves the units at once.
    await until(elsewhere, 10 + 20, f"units of {victim} active elsewhere")
    cluster.sandbox.boot(victim)


async def test_drain_moves_units_and_leaves_the_machine_empty(cluster: Cluster) -> None:
    for i in range(6):
        await cluster.submit(f"drain{i}")
    placed = await until(cluster.all_active, 60, "units active")
    assert isinstance(placed, dict)
    target = max(set(placed.values()), key=list(placed.values()).count)
    target_id = cluster.sandbox.machine(target).machine_id
    await cluster.store.set_machine_flags(target_id, MachineFlags(draining=True))

    async def drained() -> bool:
        now = await cluster.all_active()
        return bool(now) and target not in now.values()  # type: ignore[union-attr]

    await until(drained, 60, f"{target} drained with every unit active elsewhere")
    await cluster.store.set_machine_flags(target_id, MachineFlags())


async def test_killed_leader_is_replaced_within_the_lease_ttl(cluster: Cluster) -> None:
    for i in range(3):
        await cluster.submit(f"keep{i}")
    before = await until(cluster.all_active, 60, "units active")
    leader = await until(cluster.leader, 20, "a leader")
    assert isinstance(leader, tuple)
    cluster.sandbox.kill_fleetd(leader[0])

    async def new_leader() -> bool:
        now = await cluster.leader()
        return now is not None and now[1] != leader[1]

    await until(new_leader, LEADER_TTL + 5, "a new leader (new election revision)")
    late = await cluster.submit("late")
    after = await until(cluster.all_active, 60, "all units active, including one submitted late")
    assert isinstance(after, dict) and isinstance(before, dict)
    assert {n: after[n] for n in before} == before  # nothing moved, nothing lost
    for name in cluster.names:
        assert len(await cluster.where(name)) == 1  # nothing duplicated
    assert late in after


async def test_paused_leader_cannot_write_after_it_was_replaced(cluster: Cluster) -> None:
    await cluster.submit("steady")
    await until(cluster.all_active, 60, "unit active")
    leader = await until(cluster.leader, 20, "a leader")
    assert isinstance(leader, tuple)
    name, revision = leader
    pid = cluster.sandbox.exec(name, "systemctl", "show", "-p", "MainPID", "--value", "fleetd")
    main_pid = pid.stdout.strip()
    assert main_pid and main_pid != "0", pid.stderr
    cluster.sandbox.exec(name, "kill", "-STOP", main_pid)
    try:

        async def replaced() -> bool:
            now = await cluster.leader()
            return now is not None and now[1] != revision and now[0] != name

        # Resumed before its machine lease (agent TTL 10 s) can expire.
        await until(replaced, LEADER_TTL + 5, "another machine leads while the old one is paused")
    finally:
        cluster.sandbox.exec(name, "kill", "-CONT", main_pid)
    await cluster.submit("after")
    await until(cluster.all_active, 60, "new work placed by the new leader")

    # The resumed process notices it lost the lead (its lease deadline passed) and
    # says so in its metrics; nothing moved or doubled meanwhile.
    before = await cluster.all_active()

    async def stepped_down() -> bool:
        metrics = await cluster.metrics(name)
        return metrics.get("fleetd_engine_leader") == 0.0

    await until(stepped_down, 30, f"fleetd on {name} reports it no longer leads")
    assert await cluster.all_active() == before
    for unit in cluster.names:
        assert len(await cluster.where(unit)) == 1
    current = await cluster.leader()
    assert current is not None and current[1] != revision
