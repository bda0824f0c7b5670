"""Scenarios on the in-process cluster (fleetd/testing/cluster.py): the real engine and
agents over the in-memory registry and fake systemd, driven through the API."""

from __future__ import annotations

from pathlib import Path

from fleetd.model import DesiredState
from fleetd.testing.cluster import cluster

SERVICE = "[Unit]\nDescription=web\n\n[Service]\nExecStart=/bin/sleep 1000\n"


async def test_start_stop_destroy(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=2) as c:
        await c.submit("web.service", SERVICE)
        await c.wait_for(lambda: len(c.running("web.service")) == 1, "web running somewhere")
        [machine] = c.running("web.service")

        async def published() -> bool:
            state = (await c.states("web.service")).get(machine)
            return state is not None and state.active_state == "active"

        await c.wait_for(published, "its state published")
        await c.set_desired("web.service", DesiredState.LOADED)
        await c.wait_for(lambda: c.running("web.service") == [], "web stopped")
        assert c.nodes[machine].systemd.unit("web.service") is not None
        await c.destroy("web.service")

        async def gone() -> bool:
            return await c.where() == {} and await c.states("web.service") == {}

        await c.wait_for(gone, "web unscheduled and its state removed")
        assert c.nodes[machine].systemd.unit("web.service") is None


def unit(**fleet: str) -> str:
    lines = [SERVICE.rstrip("\n")]
    if fleet:
        lines.append("\n[X-Fleet]")
        lines += [f"{k}={v}" for k, v in fleet.items()]
    return "\n".join(lines) + "\n"


async def test_a_lost_machine_s_units_move_and_at_most_once_waits_for_the_grace(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, machines=2, at_most_once_grace=5.0) as c:
        m2 = c.nodes["m2"]
        await m2.stop()  # m1 gets everything first
        await c.submit("web.service", unit())
        await c.submit("once.service", unit(AtMostOnce="true"))
        both = ["web.service", "once.service"]
        await c.wait_for(lambda: all(c.running(n) == ["m1"] for n in both), "both on m1")
        m2.start()
        await c.nodes["m1"].power_off()
        await c.wait_for(lambda: c.running("web.service") == ["m2"], "web moved to m2")
        assert c.running("once.service") == []
        assert "AtMostOnce" in await c.reason("once.service")
        c.advance(5.0)
        await c.wait_for(lambda: c.running("once.service") == ["m2"], "once moved after grace")


async def test_fleetd_back_after_its_lease_expired_restarts_none_of_its_pinned_units(
    tmp_path: Path,
) -> None:
    """fleetd down longer than its TTL (a slow restart on a loaded host): units pinned to the
    machine stay scheduled on it while it is lost, so the agent back adopts them."""
    async with cluster(tmp_path, machines=2) as c:
        m2 = c.nodes["m2"]
        names = [f"pinned{i}.service" for i in range(3)]
        for name in names:
            await c.submit(name, unit(MachineID=m2.machine.id))
        await c.wait_for(lambda: all(c.running(n) == ["m2"] for n in names), "all on m2")
        pids = {n: m2.systemd.unit(n).main_pid for n in names}
        lease = m2.agent.presence.lease if m2.agent is not None else 0
        await m2.stop()
        await c.registry.revoke_lease(lease)  # its TTL ran out before it was back

        async def kept() -> bool:
            reasons = [await c.reason(n) for n in names]
            return all("which is lost: it stays scheduled there" in r for r in reasons)

        await c.wait_for(kept, "the engine saw m2 lost and kept its units there")
        assert {n: (await c.where()).get(n) for n in names} == {n: ["m2"] for n in names}
        m2.start()

        async def back() -> bool:
            return [await c.reason(n) for n in names] == [""] * len(names)

        await c.wait_for(back, "m2 registered again, its units placed there as before")
        assert {n: m2.systemd.unit(n).main_pid for n in names} == pids


async def test_conflicting_units_never_share_a_machine(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=2) as c:
        for i in range(3):
            await c.submit(f"web@{i}.service", unit(Conflicts="web@*"))
        names = [f"web@{i}.service" for i in range(3)]

        def placed() -> bool:
            return sorted(m for n in names for m in c.running(n)) == ["m1", "m2"]

        await c.wait_for(placed, "two instances running, one per machine")
        waiting = [n for n in names if not c.running(n)]
        assert len(waiting) == 1
        assert "conflict" in (await c.reason(waiting[0])).lower()
        await c.add_machine("m3", hostname="m3")
        await c.wait_for(lambda: c.running(waiting[0]) == ["m3"], "the third on the new machine")


async def test_global_units_run_on_every_machine(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=2) as c:
        await c.submit("log.service", unit(Global="true"))
        await c.wait_for(lambda: c.running("log.service") == ["m1", "m2"], "on both machines")
        await c.add_machine("m3", hostname="m3")
        await c.wait_for(lambda: len(c.running("log.service")) == 3, "on the new machine too")
        await c.nodes["m2"].power_off()
        await c.wait_for(lambda: c.running("log.service") == ["m1", "m3"], "m2 is gone")

        async def unscheduled() -> bool:
            return await c.where() == {"log.service": ["m1", "m3"]}

        await c.wait_for(unscheduled, "m2's entry removed")


async def test_an_agent_restart_adopts_its_units_without_restarting_them(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=1) as c:
        await c.submit("web.service", unit())
        await c.wait_for(lambda: c.running("web.service") == ["m1"], "web running")
        node = c.nodes["m1"]
        unit_before = node.systemd.unit("web.service")
        assert unit_before is not None
        pid = unit_before.main_pid
        await node.restart()
        await c.submit("other.service", unit())
        await c.wait_for(lambda: c.running("other.service") == ["m1"], "the new agent acts")
        assert node.systemd.unit("web.service") is unit_before
        assert unit_before.main_pid == pid
        starts = [arg for member, arg in node.systemd.calls if member == "StartUnit"]
        assert starts == ["web.service", "other.service"]


async def test_a_failed_unit_is_published_and_not_restarted(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=1) as c:
        await c.submit("bad.service", "[Service]\nExecStart=/bin/false\n")

        async def failed() -> bool:
            state = (await c.states("bad.service")).get("m1")
            return state is not None and state.active_state == "failed"

        await c.wait_for(failed, "bad.service published as failed")
        await c.submit("next.service", unit())
        await c.wait_for(lambda: c.running("next.service") == ["m1"], "more passes ran")
        starts = [a for m, a in c.nodes["m1"].systemd.calls if m == "StartUnit"]
        assert starts.count("bad.service") == 1


async def test_status_and_journal_come_from_the_unit_s_machine(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=2) as c:
        await c.nodes["m1"].stop()
        await c.submit("web.service", unit())
        await c.wait_for(lambda: c.running("web.service") == ["m2"], "web on m2")
        api = c.client("m1")  # m1 forwards to m2's API
        status = (await api.get("/units/web.service/status")).json()
        assert status["machineID"] == "m2" and status["exitCode"] == 0
        assert status["output"].startswith("● web.service - web\n")
        journal = await api.get("/units/web.service/journal", params={"lines": 2})
        assert journal.text.splitlines() == ["Starting web...", "Started web."]
