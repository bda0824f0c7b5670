"""Maintenance of machines on the in-process cluster (fleetd/testing/cluster.py): the real
engine (and its maintenance driver) and agents, the API; a reboot is the fake systemd
powering off and booting with a new boot id (fleetd/testing/hostactions.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from fleetd.maintenance.record import RebootRequest
from fleetd.maintenance.store import MaintenanceStore
from fleetd.model import DesiredState, MachineFlags
from fleetd.testing.cluster import Cluster, cluster
from tests.component.scenariokit import sampling, unit


async def start(c: Cluster, **body: Any) -> dict[str, Any]:
    response = await c.api.post("/maintenance", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def status(c: Cluster) -> dict[str, Any]:
    response = await c.api.get("/maintenance")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


async def wait_over(c: Cluster, within: float = 30.0) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def over() -> bool:
        found.update(await status(c))
        return found["phase"] in ("done", "failed", "cancelled")

    await c.wait_for(over, "the maintenance is over", within=within)
    return found


async def launch(c: Cluster, names: list[str], text: str) -> None:
    for name in names:
        await c.submit(name, text)
    await c.wait_for(lambda: all(c.running(n) for n in names), "all running")


async def slots(c: Cluster, n: int) -> None:
    """Set the cluster setting max_unavailable (the reboot semaphore's size)."""
    settings, revision = await c.store.get_cluster_settings()
    await c.store.put_cluster_settings(settings.changed({"max_unavailable": n}), revision)


async def test_a_rolling_reboot_of_every_machine_keeps_the_services_up(tmp_path: Path) -> None:
    names = [f"web@{i}.service" for i in range(1, 7)]
    async with cluster(tmp_path, machines=3) as c:
        await c.submit("web@.service", unit(MaxUnavailable="1"), DesiredState.INACTIVE)
        await launch(c, names, unit(MaxUnavailable="1"))
        await c.submit("once.service", unit(AtMostOnce="true"))
        await c.wait_for(lambda: bool(c.running("once.service")), "once running")
        before = await c.where()
        low = 6

        def probe() -> None:
            nonlocal low
            low = min(low, sum(1 for n in names if c.running(n)))
            assert low >= 5, "two instances were down at once"
            assert len(c.running("once.service")) <= 1, "once.service ran twice"

        async with sampling(probe):
            record = await start(c, all=True)
            assert record["phase"] == "running" and record["action"] == "reboot"
            assert [m["id"] for m in record["machines"]] == ["m1", "m2", "m3"]
            done = await wait_over(c)
        assert done["phase"] == "done", done
        assert all(m["phase"] == "done" for m in done["machines"]), done
        assert [c.nodes[m].boots for m in ("m1", "m2", "m3")] == [2, 2, 2]
        assert await c.store.list_machine_flags() == {}  # all uncordoned
        assert low == 6  # start-first: no instance was ever down
        # Done means spread again: as many units on each machine as before, each on one.
        after = await c.where()
        assert sorted(after) == sorted(before) and all(len(ms) == 1 for ms in after.values())
        assert Counter(ms[0] for ms in after.values()) == Counter(ms[0] for ms in before.values())
        assert await MaintenanceStore(c.store).list_actions() == {}


async def test_a_failing_command_stops_the_maintenance_and_leaves_its_machine_cordoned(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, machines=3) as c:
        await launch(c, ["a.service", "b.service"], unit())
        c.nodes["m2"].actions.status = lambda argv: 3 if "m2" in argv else 0
        await start(c, machines=["m1", "m2", "m3"], command=["/usr/bin/upgrade", "m2"])
        done = await wait_over(c)
        assert done["phase"] == "failed"
        assert done["failure"].startswith("m2: command /usr/bin/upgrade m2 exited with status 3")
        jobs = {m["id"]: m for m in done["machines"]}
        assert jobs["m1"]["phase"] == "done" and jobs["m1"]["exitStatus"] == 0
        assert jobs["m2"]["phase"] == "failed" and jobs["m2"]["exitStatus"] == 3
        assert jobs["m3"]["phase"] == "pending"
        assert jobs["m3"]["detail"] == "not started: the maintenance stopped"
        flags = await c.store.list_machine_flags()
        assert flags == {"m2": MachineFlags(unschedulable=True, draining=True)}
        assert c.nodes["m1"].actions.commands == [("/usr/bin/upgrade", "m2")]
        assert c.nodes["m3"].actions.commands == []
        assert all(n.boots == 1 for n in c.nodes.values())  # a command is no reboot


async def test_bad_maintenance_requests_change_nothing(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=2) as c:

        async def registered() -> bool:
            return len(await c.store.list_machines()) == 2

        await c.wait_for(registered, "both registered")
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"machines": ["nope"]}, 404, "machine nope is not registered"),
            ({"machines": ["m1"], "maxUnavailable": 0}, 400, "maxUnavailable"),
            ({"machines": []}, 400, "give the machines"),
            ({}, 400, "give the machines"),
            ({"machines": ["m1", "m1"]}, 400, "named more than once"),
            ({"machines": ["m1"], "all": True}, 400, "not both"),
            ({"machines": ["m1"], "command": []}, 400, "command"),
            ({"machines": ["m1"], "command": [""]}, 400, "the command is empty"),
        ]
        for body, code, text in cases:
            response = await c.api.post("/maintenance", json=body)
            assert response.status_code == code, (body, response.text)
            assert text in response.text, (body, response.text)
        assert (await c.api.get("/maintenance")).status_code == 404
        assert await c.store.list_machine_flags() == {}
        # One at a time: a second one is refused while the first runs.
        c.nodes["m1"].actions.status = lambda argv: 0
        first = await start(c, machines=["m1"], command=["/bin/sleep"])
        second = await c.api.post("/maintenance", json={"all": True})
        assert second.status_code == 409, second.text
        assert f"maintenance {first['id']}" in second.text and "one at a time" in second.text
        assert (await status(c))["id"] == first["id"]
        await wait_over(c)


async def test_reboot_requests_are_served_one_machine_at_a_time(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=3) as c:
        await launch(c, [f"u{i}.service" for i in range(6)], unit())
        records = MaintenanceStore(c.store)
        await slots(c, 1)
        holding: list[int] = []
        watching = True

        async def watch() -> None:  # the semaphore: one slot held at a time
            while watching:
                response = await c.api.get("/maintenance")
                if response.status_code == 200:
                    jobs = response.json()["machines"]
                    holding.append(sum(j["phase"] in ("draining", "acting") for j in jobs))
                await asyncio.sleep(0.002)

        watcher = asyncio.create_task(watch())
        for machine in ("m2", "m3"):
            await records.request(RebootRequest(machine, since=1.0, reason="test"))
        await c.wait_for(
            lambda: c.nodes["m2"].boots == 2 and c.nodes["m3"].boots == 2,
            "both rebooted",
            within=30,
        )
        done = await wait_over(c)
        watching = False
        await watcher
        assert done["requested"] and done["phase"] == "done"
        assert max(holding) == 1, "two machines were taken down at once"
        assert c.nodes["m1"].boots == 1
        assert await records.list_requests() == {}

        # A request through the API, outside its window: it waits.
        await records.request(RebootRequest("m1", since=2.0, reason="x", window="Mon 00:00 1min"))
        response = await c.api.get("/reboot-requests")
        assert [r["machineID"] for r in response.json()] == ["m1"]

        async def waits() -> bool:
            record = await status(c)
            return "outside its maintenance window" in record["machines"][0]["detail"]

        await c.wait_for(waits, "it waits for its window", within=10)
        assert c.nodes["m1"].boots == 1


async def test_a_new_leader_goes_on_where_the_last_one_stopped(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=3) as c:
        await launch(c, [f"u{i}.service" for i in range(6)], unit())
        await start(c, all=True)

        async def midway() -> bool:
            jobs = (await status(c))["machines"]
            return jobs[1]["phase"] in ("draining", "acting")

        await c.wait_for(midway, "m2 taken down", within=20)
        await c.cancel("engine")  # the leader goes away (it resigns) ...
        c.start_engine()  # ... and another one takes over, with nothing in memory
        done = await wait_over(c)
        assert done["phase"] == "done", done
        assert [c.nodes[m].boots for m in ("m1", "m2", "m3")] == [2, 2, 2]
        assert await c.store.list_machine_flags() == {}


async def test_the_semaphore_follows_the_cluster_setting_live(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=3) as c:
        await launch(c, [f"u{i}.service" for i in range(3)], unit())
        records = MaintenanceStore(c.store)
        await slots(c, 1)
        hold = c.nodes["m2"].actions.hold = asyncio.Event()
        for machine in ("m2", "m3"):
            await records.request(RebootRequest(machine, since=1.0, reason="test"))
        await c.wait_for(lambda: c.nodes["m2"].actions.reboots == 1, "m2 rebooting", within=10)
        record = await status(c)
        assert record["maxUnavailable"] == 1 and record["machines"][1]["phase"] == "pending"
        assert record["machines"][1]["detail"] == "waiting for a slot (1 at a time)"
        await slots(c, 2)  # as fleetctl config set max_unavailable 2 does

        async def two_slots() -> bool:
            found = await status(c)
            return found["maxUnavailable"] == 2 and found["machines"][1]["phase"] != "pending"

        await c.wait_for(two_slots, "m3 taken while m2 is still down", within=10)
        assert c.nodes["m2"].boots == 1  # still mid-reboot
        hold.set()
        done = await wait_over(c)
        assert done["phase"] == "done" and [c.nodes[m].boots for m in ("m2", "m3")] == [2, 2]
