"""A maintenance that stops before its end, on the in-process cluster (fleetd/testing/
cluster.py): a start-first move past its deadline (``start_first_timeout``, on an
injected clock) and ``POST /maintenance/cancel``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from api.routes.events import classify
from fleetd.maintenance.record import RebootRequest
from fleetd.maintenance.store import MaintenanceStore
from fleetd.model import MachineFlags
from fleetd.registry.base import WatchEvent
from fleetd.testing.cluster import Cluster, ManualClock, ManualWall, cluster
from tests.component.scenariokit import unit
from tests.component.test_maintenance_scenarios import launch, start, status, wait_over


async def job(c: Cluster, machine: str) -> dict[str, Any]:
    found: dict[str, Any] = next(m for m in (await status(c))["machines"] if m["id"] == machine)
    return found


async def test_a_start_first_move_past_its_deadline_stops_the_maintenance(
    tmp_path: Path,
) -> None:
    # Healthy only on m1: moved off m1, it never gets healthy, so the drain cannot end.
    check = 'exec:/bin/sh -c "test %H = m1"'
    clock = ManualClock()
    async with cluster(
        tmp_path,
        machines=2,
        clock=clock,
        wall=ManualWall(clock),
        ttl=3600,
        start_first_timeout=30.0,
    ) as c:
        await c.nodes["m2"].stop()
        await c.submit("web.service", unit(HealthCheck=check, HealthCheckInterval="100ms"))
        await c.wait_for(lambda: c.running("web.service") == ["m1"], "web on m1")
        c.nodes["m2"].start()

        async def registered() -> bool:
            return await c.store.get_machine("m2") is not None

        await c.wait_for(registered, "m2 registered again")
        _, revision = await c.store.registry.get_prefix(c.store.keys.version)
        events: list[WatchEvent] = []

        async def watch() -> None:
            async for batch in c.store.registry.watch_prefix(c.store.keys.prefix, revision + 1):
                events.extend(batch)

        watcher = asyncio.create_task(watch())
        try:
            await start(c, machines=["m1", "m2"])

            async def moving() -> bool:
                return "web.service (moving to m2)" in (await job(c, "m1"))["detail"]

            await c.wait_for(moving, "m1 drains: web.service moves to m2", within=10)
            await c.wait_for(lambda: c.running("web.service") == ["m1", "m2"], "both copies")

            def steps() -> int:
                assert c.engine is not None
                return c.engine.maintenance.steps_total

            taken = steps()
            c.advance(29)
            # A few steps of the driver on the moved clock: still within the deadline.
            await c.wait_for(lambda: steps() >= taken + 3, "three driver steps after +29s")
            assert (await status(c))["phase"] == "running"
            c.advance(1)
            done = await wait_over(c)
        finally:
            watcher.cancel()
        why = "web.service was not active and healthy on m2 within 30s (start_first_timeout)"
        assert done["phase"] == "failed", done
        assert done["failure"].startswith(f"m1: drain stopped: {why}"), done["failure"]
        assert done["failure"].endswith("its copy on m1 keeps running")
        assert [m["phase"] for m in done["machines"]] == ["failed", "pending"]
        assert await c.store.list_machine_flags() == {
            "m1": MachineFlags(unschedulable=True, draining=True)
        }
        assert "m1" in c.running("web.service") and c.nodes["m1"].boots == 1

        async def reason_says() -> bool:
            return "not up there within 30s (start_first_timeout)" in await c.reason("web.service")

        await c.wait_for(reason_says, "list-units' reason names the deadline")
        listed = (await c.api.get("/units/web.service")).json()
        assert "moving from m1 to m2" in listed["reason"] and "within 30s" in listed["reason"]
        shown = [classify(c.store, e) for e in events]
        failures = [d["failure"] for k, d in filter(None, shown) if k == "maintenance"]
        assert any(why in f for f in failures), "the event stream says why it stopped"


async def test_a_cancel_lets_the_machine_under_way_come_back_and_starts_no_other(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, machines=3) as c:
        await launch(c, [f"u{i}.service" for i in range(6)], unit())
        nothing = await c.api.post("/maintenance/cancel")
        assert nothing.status_code == 404 and "nothing to cancel" in nothing.text
        before = await c.where()
        hold = c.nodes["m1"].actions.hold = asyncio.Event()
        await start(c, all=True)
        await c.wait_for(lambda: c.nodes["m1"].actions.reboots == 1, "m1 asked to reboot")
        response = await c.api.post("/maintenance/cancel")
        assert response.status_code == 200, response.text
        cancelled = response.json()
        assert cancelled["phase"] == "stopping" and cancelled["cancelledBy"]
        again = await c.api.post("/maintenance/cancel")
        assert again.status_code == 409 and "already being cancelled" in again.text
        assert c.engine is not None
        taken = c.engine.maintenance.steps_total
        # A few steps of the driver after the cancel: m1 is still mid-reboot.
        await c.wait_for(
            lambda: c.engine is not None and c.engine.maintenance.steps_total >= taken + 3,
            "three driver steps after the cancel",
        )
        assert (await job(c, "m1"))["phase"] == "acting"
        assert (await status(c))["message"].startswith("stopping (cancelled by ")
        hold.set()
        done = await wait_over(c)
        assert done["phase"] == "cancelled", done
        assert done["message"] == f"cancelled by {cancelled['cancelledBy']}"
        assert [m["phase"] for m in done["machines"]] == ["done", "pending", "pending"]
        detail = done["machines"][1]["detail"]
        assert detail == "not started: the maintenance was cancelled"
        assert [c.nodes[m].boots for m in ("m1", "m2", "m3")] == [2, 1, 1]
        assert await c.store.list_machine_flags() == {}  # m1 uncordoned, no other cordoned

        async def home() -> bool:
            return await c.where() == before

        await c.wait_for(home, "every unit back where it was", within=10)
        over = await c.api.post("/maintenance/cancel")
        assert over.status_code == 409 and "is cancelled: nothing runs to cancel" in over.text


async def test_cancelling_the_served_requests_withdraws_those_not_started(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=3) as c:
        await launch(c, [f"u{i}.service" for i in range(3)], unit())
        records = MaintenanceStore(c.store)
        hold = c.nodes["m2"].actions.hold = asyncio.Event()
        for machine in ("m2", "m3"):
            await records.request(RebootRequest(machine, since=1.0, reason="test"))
        await c.wait_for(lambda: c.nodes["m2"].actions.reboots == 1, "m2 rebooting", within=10)
        response = await c.api.post("/maintenance/cancel")
        assert response.status_code == 200, response.text
        assert set(await records.list_requests()) == {"m2"}  # m3's withdrawn at once
        hold.set()
        done = await wait_over(c)
        assert done["phase"] == "cancelled" and done["requested"]
        assert [c.nodes[m].boots for m in ("m2", "m3")] == [2, 1]
        assert await records.list_requests() == {}  # m2's went with its reboot
        response = await c.api.get("/maintenance")
        assert response.json()["id"] == done["id"]  # and nothing was started again
