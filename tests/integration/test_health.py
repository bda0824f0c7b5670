"""A machine whose agent loses systemd's D-Bus API, on the sandbox's real machines.

D-Bus is stopped inside one machine (``dbus.socket`` and ``dbus.service``:
the agent talks to systemd through the system bus, so its connection drops
and every reconnect is refused).  That machine must say so (``/healthz``,
``/metrics``, ``fleetctl list-machines``), get no new unit (the reason names
it), keep running what it runs (same MainPID), and take units again once
D-Bus is back.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from cluster_helpers import fleetctl, unit_properties
from prometheus_client.parser import text_string_to_metric_families

from fleetd.model import DesiredState, Unit
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Store
from fleetd.sandbox.cluster import Sandbox
from fleetd.sandbox.spec import API_PORT
from fleetd.unitfile import UnitFile

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SLEEPER = "[Unit]\nDescription=health test {what}\n\n[Service]\nExecStart=/bin/sleep 100000\n"
VICTIM = "m2"
DBUS = ("dbus.socket", "dbus.service")


async def until(check: Callable[[], Awaitable[Any]], within: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while not (result := await check()):  # noqa: ASYNC110 (state outside this process)
                await asyncio.sleep(0.2)
            return result
    except TimeoutError:
        raise AssertionError(f"not within {within}s: {what}") from None


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of sample ``name{labels}`` in a Prometheus text exposition, if present."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


class Health:
    def __init__(self, sandbox: Sandbox, store: Store) -> None:
        self.sandbox = sandbox
        self.store = store
        self.tag = uuid.uuid4().hex[:6]
        self.names: list[str] = []
        self.victim = sandbox.machine(VICTIM)

    async def submit(self, what: str, fleet: str = "") -> str:
        name = f"hl-{self.tag}-{what}.service"
        text = SLEEPER.format(what=what) + (f"\n[X-Fleet]\n{fleet}\n" if fleet else "")
        unit = Unit(name, text, UnitFile.from_text(text).hash, DesiredState.LAUNCHED)
        await self.store.put_unit(unit)
        self.names.append(name)
        return name

    def pinned(self) -> str:
        return f"MachineID={self.victim.machine_id}"

    async def get(self, path: str) -> httpx.Response:
        """``path`` from the victim's own fleetd API (TCP, with the token)."""
        token = self.sandbox.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"http://{self.victim.ip}:{API_PORT}{path}"
        async with httpx.AsyncClient(timeout=10.0) as client:
            return await client.get(url, headers=headers)

    def dbus(self, action: str) -> None:
        proc = self.sandbox.exec(VICTIM, "systemctl", action, *DBUS)
        assert proc.returncode == 0, proc.stderr

    async def active_on_victim(self, name: str) -> bool:
        entries = await self.store.list_schedule(self.victim.machine_id)
        if name not in {e.name for e in entries}:
            return False
        props = await asyncio.to_thread(
            unit_properties, self.sandbox, VICTIM, [name], ["ActiveState"]
        )
        return props[name]["ActiveState"] == "active"

    async def main_pids(self, names: list[str]) -> dict[str, str]:
        props = await asyncio.to_thread(
            unit_properties, self.sandbox, VICTIM, names, ["ActiveState", "MainPID"]
        )
        assert all(p["ActiveState"] == "active" for p in props.values()), props
        return {name: p["MainPID"] for name, p in props.items()}

    async def cleanup(self) -> None:
        self.dbus("start")
        for name in self.names:
            await self.store.delete_unit(name)


@pytest.fixture
async def health(sandbox: Sandbox) -> AsyncIterator[Health]:
    registry = EtcdRegistry(list(sandbox.etcd_endpoints), timeout=5.0)
    h = Health(sandbox, Store(registry, Keys()))
    try:
        yield h
    finally:
        try:
            await h.cleanup()
        finally:
            await registry.close()


async def test_a_machine_without_dbus_says_so_gets_nothing_new_and_keeps_its_units(
    health: Health,
) -> None:
    running = [await health.submit(f"run{i}", health.pinned()) for i in range(2)]
    for name in running:
        await until(lambda n=name: health.active_on_victim(n), 60, f"{name} active on {VICTIM}")
    before = await health.main_pids(running)
    assert (await health.get("/healthz")).status_code == 200
    text = (await health.get("/metrics")).text
    assert sample(text, "fleetd_agent_systemd_connected") == 1
    assert (sample(text, "fleetd_agent_units", active="active") or 0) >= len(running)
    age, ttl = (sample(text, f"fleetd_agent_lease_{m}_seconds") for m in ("age", "ttl"))
    assert age is not None and ttl is not None and 0 <= age < ttl
    assert sample(text, "fleetd_machines_systemd_unreachable") == 0
    assert sample(text, "fleetd_engine_leader") in (0, 1)
    assert (sample(text, "process_cpu_seconds_total") or 0) > 0

    health.dbus("stop")

    async def unhealthy() -> dict[str, Any] | None:
        r = await health.get("/healthz")
        return r.json() if r.status_code == 503 else None

    body = await until(unhealthy, 30, f"/healthz of {VICTIM} not 200")
    assert body["status"] == "degraded" and body["systemd"] == "unavailable"
    assert "agent cannot reach systemd since" in body["reason"]
    assert "system bus" in body["reason"]
    text = (await health.get("/metrics")).text
    assert sample(text, "fleetd_agent_systemd_connected") == 0

    async def listed() -> dict[str, Any] | None:
        proc = await asyncio.to_thread(fleetctl, health.sandbox, "-o", "json", "list-machines")
        assert proc.returncode == 0, proc.stderr
        machines = {m["id"]: m for m in json.loads(proc.stdout)}
        found = machines[health.victim.machine_id]
        return machines if found["systemdConnected"] is False else None

    machines = await until(listed, 30, f"list-machines shows {VICTIM} cut off")
    assert sum(not m["systemdConnected"] for m in machines.values()) == 1
    proc = fleetctl(health.sandbox, "list-machines", "--full", "--fields", "machine,status")
    assert f"{health.victim.machine_id}\tsystemd-unreachable" in proc.stdout.splitlines()

    # New units: a pinned one waits with the reason, another one goes elsewhere.
    pinned = await health.submit("pinned", health.pinned())
    elsewhere = await health.submit("elsewhere")

    async def reason() -> str | None:
        placement = await health.store.get_placement(pinned)
        return placement.summary if placement else None

    text = await until(reason, 30, f"{pinned} rejected with a reason")
    assert text == (
        f"pinned to machine {health.victim.machine_id}: "
        f"{health.victim.machine_id}: agent cannot reach systemd"
    )

    async def placed() -> list[str] | None:
        entries = await health.store.list_all_schedule()
        return [e.machine for e in entries if e.name == elsewhere] or None

    assert await until(placed, 30, f"{elsewhere} placed") != [health.victim.machine_id]
    on_victim = await health.store.list_schedule(health.victim.machine_id)
    assert {e.name for e in on_victim} == set(running)
    # The units it ran keep running, untouched.
    assert await health.main_pids(running) == before

    health.dbus("start")

    async def healthy() -> bool:
        return (await health.get("/healthz")).status_code == 200

    await until(healthy, 30, f"/healthz of {VICTIM} back to 200")
    await until(lambda: health.active_on_victim(pinned), 60, f"{pinned} active on {VICTIM}")
    assert await health.store.get_placement(pinned) is None
    assert await health.main_pids(running) == before
    proc = fleetctl(health.sandbox, "list-machines", "--full", "--fields", "machine,status")
    assert f"{health.victim.machine_id}\tready" in proc.stdout.splitlines()
