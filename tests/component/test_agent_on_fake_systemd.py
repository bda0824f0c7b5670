"""The real agent (in the in-process cluster) when systemd misbehaves: FakeSystemd's
injected faults, a lost bus, a machine that shuts down, a unit file that changes."""

from __future__ import annotations

from pathlib import Path

from fleetd.agent.units import NO_SUCH_UNIT
from fleetd.model import DesiredState
from fleetd.testing.cluster import cluster

SERVICE = "[Unit]\nDescription=web {version}\n\n[Service]\nExecStart=/bin/sleep 1000\n"


async def test_a_failed_phase_is_retried_on_the_next_pass(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=1) as c:
        systemd = c.nodes["m1"].systemd
        systemd.fail("LinkUnitFiles", "org.freedesktop.DBus.Error.AccessDenied")
        await c.submit("web.service", SERVICE.format(version=1))
        await c.wait_for(lambda: c.running("web.service") == ["m1"], "web runs after a retry")
        links = [arg for member, arg in systemd.calls if member == "LinkUnitFiles"]
        assert len(links) == 2


async def test_a_unit_start_refused_by_systemd_is_not_retried(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=1) as c:
        systemd = c.nodes["m1"].systemd
        systemd.fail("StartUnit", NO_SUCH_UNIT, unit="web.service")
        await c.submit("web.service", SERVICE.format(version=1))
        await c.submit("other.service", SERVICE.format(version=2))
        await c.wait_for(lambda: c.running("other.service") == ["m1"], "other runs")
        await c.set_desired("other.service", DesiredState.LOADED)
        await c.wait_for(lambda: c.running("other.service") == [], "another pass ran")
        starts = [arg for member, arg in systemd.calls if member == "StartUnit"]
        assert starts.count("web.service") == 1
        assert c.running("web.service") == []


async def test_a_change_while_the_bus_was_away_is_seen_after_reconnecting(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, machines=1) as c:
        node = c.nodes["m1"]
        await c.submit("web.service", SERVICE.format(version=1))

        async def published(active: str) -> bool:
            state = (await c.states("web.service")).get("m1")
            return state is not None and state.active_state == active

        await c.wait_for(lambda: published("active"), "web published active")
        node.systemd.set_bus(False)
        node.systemd.systemctl("stop", "web.service")  # no signal reaches the agent
        node.systemd.set_bus(True)
        await c.wait_for(lambda: published("inactive"), "the stop seen after reconnecting")
        assert node.agent is not None and node.agent.manager.connected


async def test_a_machine_shutting_down_hands_its_units_over_at_once(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=2) as c:
        await c.nodes["m2"].stop()
        await c.submit("web.service", SERVICE.format(version=1))
        await c.wait_for(lambda: c.running("web.service") == ["m1"], "web on m1")
        c.nodes["m2"].start()
        c.nodes["m1"].shutdown()  # its lease is revoked: no waiting for the TTL
        await c.wait_for(lambda: c.nodes["m1"].agent is None, "m1's agent ended")

        async def moved() -> bool:
            return await c.where() == {"web.service": ["m2"]}

        await c.wait_for(moved, "web moved to m2")
        await c.wait_for(lambda: "m2" in c.running("web.service"), "web running on m2")


async def test_a_changed_unit_file_replaces_the_running_unit(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=1) as c:
        systemd = c.nodes["m1"].systemd
        await c.submit("web.service", SERVICE.format(version=1))
        await c.wait_for(lambda: c.running("web.service") == ["m1"], "web v1 running")
        first = systemd.unit("web.service")
        assert first is not None and first.description == "web 1"
        pid = first.main_pid
        await c.submit("web.service", SERVICE.format(version=2), replace=True)

        def replaced() -> bool:
            unit = systemd.unit("web.service")
            return unit is not None and unit.description == "web 2" and unit.main_pid != 0

        await c.wait_for(replaced, "web v2 running")
        unit = systemd.unit("web.service")
        assert unit is not None and unit.main_pid != pid
        members = [member for member, _ in systemd.calls]
        replacing = members[members.index("StartUnit") + 1 :]
        assert replacing == [
            "StopUnit",  # the old version stops,
            "DisableUnitFiles",  # is unloaded,
            "ResetFailedUnit",
            "LinkUnitFiles",  # the new one loaded,
            "ListUnitsByNames",
            "Reload",  # systemd re-reads the replaced file
            "ListUnitsByNames",
            "StartUnit",  # and it starts
        ]


async def test_a_unit_with_an_install_section_is_enabled_and_disabled(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=1) as c:
        systemd = c.nodes["m1"].systemd
        text = SERVICE.format(version=1) + "\n[Install]\nWantedBy=multi-user.target\n"
        await c.submit("web.service", text)
        await c.wait_for(lambda: c.running("web.service") == ["m1"], "web running")
        wants = systemd.runtime_dir / "multi-user.target.wants/web.service"
        assert wants.is_symlink()
        await c.destroy("web.service")
        await c.wait_for(lambda: systemd.unit("web.service") is None, "web unloaded")
        assert not wants.is_symlink()
        assert not (systemd.runtime_dir / "web.service").is_symlink()


async def test_a_machine_whose_agent_cannot_reach_systemd_gets_no_new_units(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, machines=2) as c:
        c.nodes["m1"].systemd.set_bus(False)

        async def unreachable() -> bool:
            machine = await c.store.get_machine("m1")
            return machine is not None and not machine.systemd_connected

        await c.wait_for(unreachable, "m1 says it cannot reach systemd")
        for i in range(3):
            await c.submit(f"web@{i}.service", SERVICE.format(version=i))
        names = [f"web@{i}.service" for i in range(3)]
        await c.wait_for(lambda: all(c.running(n) == ["m2"] for n in names), "all on m2")
