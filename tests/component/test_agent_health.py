"""An agent that cannot reach systemd says so: in its machine record, and through the
API of its fleetd (``/healthz``, ``/metrics``, the machine listing).

The agent is the real one over the in-memory registry; its system bus address
names a socket nobody listens on, which is what an agent sees while D-Bus is
stopped (tests/integration/test_health.py stops the real one in a machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from apikit import client_for, make_app, samples

from fleetd.agent.agent import Agent
from fleetd.config import Config
from fleetd.model import Capacity, Machine
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store
from fleetd.testing.polling import until

MACHINE = Machine("c" * 32, "host-c", "10.0.0.3", (), Capacity(2000, 1 << 30), "1")


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    store = Store(MemoryRegistry())
    agent = Agent(
        config=Config(units_directory=str(tmp_path / "units"), agent_ttl=10.0),
        store=store,
        clock=time.monotonic,
        machine=MACHINE,
        lease_file=tmp_path / "lease",
        bus_address=f"unix:path={tmp_path / 'no-bus'}",
    )
    task = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.registry.close()


async def test_an_agent_without_systemd_registers_its_machine_as_cut_off(agent: Agent) -> None:
    async def registered() -> bool:
        return await agent.store.get_machine(MACHINE.id) is not None

    await until(registered, "the agent registered", 10.0)
    found = await agent.store.get_machine(MACHINE.id)
    # The first registration already says it: no moment in which units could go there.
    assert found is not None and not found.systemd_connected
    assert found.hostname == MACHINE.hostname and found.capacity == MACHINE.capacity
    assert not agent.systemd.connected
    assert "cannot connect to the system bus" in agent.systemd.reason


async def test_its_fleetd_reports_it_in_healthz_metrics_and_machines(agent: Agent) -> None:
    app = make_app(agent.store, machine_id=MACHINE.id, systemd=lambda: agent.systemd)
    async with client_for(app) as client:

        async def listed() -> bool:
            machines = (await client.get("/fleet/v1/machines")).json()["machines"]
            return bool(machines)

        await until(listed, "the unit listed with its health", 10.0)
        r = await client.get("/healthz")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "degraded" and body["registry"] == "ok"
        assert body["systemd"] == "unavailable" and body["machineID"] == MACHINE.id
        assert body["reason"].startswith("agent cannot reach systemd since ")
        assert "cannot connect to the system bus" in body["reason"]
        (machine,) = (await client.get("/fleet/v1/machines")).json()["machines"]
        assert machine["id"] == MACHINE.id and machine["systemdConnected"] is False
        metrics = samples((await client.get("/metrics")).text)
        assert metrics["fleetd_agent_systemd_connected"] == 0
        assert metrics["fleetd_machines_systemd_unreachable"] == 1
