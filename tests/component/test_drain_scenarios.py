"""Drains that keep services up, on the in-process cluster (fleetd/testing/cluster.py):
start-first moves (engine/handover.py), AtMostOnce units stop-first, MaxUnavailable=
budgets (engine/budget.py), move requests."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from fleetd.model import DesiredState, MachineFlags
from fleetd.testing.cluster import Cluster, cluster
from tests.component.scenariokit import sampling, unit


async def drain(c: Cluster, machine: str) -> None:
    response = await c.api.post(f"/machines/{machine}/drain")
    response.raise_for_status()


def _full_passes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The engine's full passes logged, but for the periodic safety pass (a drain's and
    a move's passes are scoped, ClusterModel.unsettled)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "fleetd.engine.engine" and "(full, " in r.getMessage()
        if "(full, safety: " not in r.getMessage()
    ]


async def test_a_drain_keeps_every_instance_running_and_at_most_once_runs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    names = [f"web@{i}.service" for i in range(1, 7)]
    async with cluster(tmp_path, machines=3) as c:
        await c.submit("web@.service", unit(MaxUnavailable="1"), DesiredState.INACTIVE)
        for name in names:
            await c.submit(name, unit(MaxUnavailable="1"))
        await c.submit("once.service", unit(AtMostOnce="true"))
        await c.wait_for(lambda: all(c.running(n) for n in [*names, "once.service"]), "all up")
        victim = c.running("once.service")[0]
        on_victim = [n for n in names if victim in c.running(n)]
        low = 6

        def probe() -> None:
            nonlocal low
            low = min(low, sum(1 for n in names if c.running(n)))
            assert low == 6, "an instance was down"
            assert len(c.running("once.service")) <= 1, "once.service ran twice"

        caplog.set_level(logging.DEBUG, logger="fleetd.engine.engine")
        caplog.clear()
        async with sampling(probe):
            await drain(c, victim)

            async def drained() -> bool:
                return not any(victim in ms for ms in (await c.where()).values())

            await c.wait_for(drained, f"{victim} drained")
            await c.wait_for(lambda: not c.nodes[victim].systemd.units, "its units stopped")
            # AtMostOnce stops first and starts elsewhere after: wait for the second half.
            await c.wait_for(
                lambda: bool(c.running("once.service")), "once.service running elsewhere"
            )
        assert all(c.running(n) and victim not in c.running(n) for n in names)
        assert c.running("once.service") and victim not in c.running("once.service")
        assert on_victim, "the drained machine ran instances"
        # No marks are left behind, nor reasons.
        entries = await c.store.list_all_schedule()
        assert not [e for e in entries if e.moving_from]
        assert [await c.reason(n) for n in names] == [""] * 6
        assert _full_passes(caplog) == []


async def test_a_new_copy_that_never_gets_healthy_keeps_the_old_one_running(
    tmp_path: Path,
) -> None:
    # Healthy only on m1: moved off m1, it never gets healthy, so m1's copy stays.
    check = 'exec:/bin/sh -c "test %H = m1"'
    async with cluster(tmp_path, machines=2) as c:
        await c.nodes["m2"].stop()
        await c.submit("web.service", unit(HealthCheck=check, HealthCheckInterval="100ms"))
        await c.wait_for(lambda: c.running("web.service") == ["m1"], "web on m1")
        c.nodes["m2"].start()
        await drain(c, "m1")

        async def reason_given() -> bool:
            return (await c.reason("web.service")).startswith("moving from m1 to m2")

        await c.wait_for(reason_given, "the move says why it waits")
        await c.wait_for(lambda: c.running("web.service") == ["m1", "m2"], "both copies run")

        async def said_why() -> bool:
            return "health check there" in await c.reason("web.service")

        await c.wait_for(said_why, "the failing check is named", within=10)
        assert c.running("web.service") == ["m1", "m2"]
        listed = (await c.api.get("/units/web.service")).json()
        assert listed["machineID"] == "m2" and "moving from m1 to m2" in listed["reason"]
        # The drain ends (uncordon): the move finishes anyway only once m2's copy is up,
        # so m1 keeps it; nothing was stopped.
        (await c.api.post("/machines/m1/uncordon")).raise_for_status()
        assert "m1" in c.running("web.service")


async def test_at_most_once_instances_leave_one_at_a_time_within_their_budget(
    tmp_path: Path,
) -> None:
    names = [f"db@{i}.service" for i in range(1, 4)]
    async with cluster(tmp_path, machines=2) as c:
        await c.nodes["m2"].stop()
        template = unit(AtMostOnce="true", MaxUnavailable="1")
        await c.submit("db@.service", template, DesiredState.INACTIVE)
        for name in names:
            await c.submit(name, unit(AtMostOnce="true", MaxUnavailable="1"))
        await c.wait_for(lambda: all(c.running(n) == ["m1"] for n in names), "all on m1")
        c.nodes["m2"].start()
        low = 3

        def probe() -> None:
            nonlocal low
            low = min(low, sum(1 for n in names if c.running(n)))
            assert low >= 2, "two instances were down at once"
            assert all(len(c.running(n)) <= 1 for n in names), "an instance ran twice"

        async with sampling(probe):
            await drain(c, "m1")

            async def told() -> bool:
                reasons = [await c.reason(n) for n in names]
                return any("MaxUnavailable=1" in r for r in reasons)

            await c.wait_for(told, "the waiting instances say why")
            for _ in range(8):  # each stop is seen at the next poll
                c.advance(0.5)
                if all(c.running(n) == ["m2"] for n in names):
                    break
                await asyncio.sleep(0.05)
            await c.wait_for(lambda: all(c.running(n) == ["m2"] for n in names), "all on m2")
        assert low == 2


async def test_a_unit_asked_to_move_goes_there_start_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with cluster(tmp_path, machines=2) as c:
        await c.nodes["m2"].stop()
        await c.submit("web.service", unit())
        await c.wait_for(lambda: c.running("web.service") == ["m1"], "web on m1")
        c.nodes["m2"].start()
        assert c.engine is not None
        seen: set[tuple[str, ...]] = set()

        def probe() -> None:
            copies = tuple(c.running("web.service"))
            seen.add(copies)
            assert copies, "web.service was down"

        caplog.set_level(logging.DEBUG, logger="fleetd.engine.engine")
        caplog.clear()
        async with sampling(probe):
            c.engine.request_moves({"web.service": "m2"})
            await c.wait_for(lambda: c.running("web.service") == ["m2"], "moved to m2")
        assert ("m1", "m2") in seen  # both ran for a moment
        assert _full_passes(caplog) == []
        c.engine.request_moves({})
        await c.store.set_machine_flags("m1", MachineFlags(unschedulable=True))
        c.engine.request_moves({"web.service": "m1"})

        def refused() -> bool:
            assert c.engine is not None
            return c.engine.refused == {"web.service": "m1: machine is unschedulable"}

        await c.wait_for(refused, "a move to a cordoned machine is refused")
        assert c.running("web.service") == ["m2"]


async def test_a_machine_of_follower_moves_start_first_with_its_peer(tmp_path: Path) -> None:
    # The follower gets healthy on m2 only once "ok" exists: until then its old copy
    # must keep running on m1 (a stop-first follower would be down meanwhile).
    ok = tmp_path / "ok"
    check = f'exec:/bin/sh -c "test %H = m1 || test -e {ok}"'
    async with cluster(tmp_path, machines=2) as c:
        await c.nodes["m2"].stop()
        await c.submit("db.service", unit())
        follower = unit(MachineOf="db.service", HealthCheck=check, HealthCheckInterval="100ms")
        await c.submit("log.service", follower)
        await c.wait_for(
            lambda: c.running("db.service") == c.running("log.service") == ["m1"], "both on m1"
        )
        c.nodes["m2"].start()

        def probe() -> None:
            assert c.running("db.service"), "db.service was down"
            assert c.running("log.service"), "its follower was down"

        async with sampling(probe):
            await drain(c, "m1")

            async def follower_waits() -> bool:
                reason = await c.reason("log.service")
                return reason.startswith("moving from m1 to m2") and "health check" in reason

            await c.wait_for(follower_waits, "the follower's move waits for its check")
            assert c.running("log.service") == ["m1", "m2"]
            ok.touch()
            c.advance(1.0)  # the next check, on the cluster's manual clock
            await c.wait_for(
                lambda: c.running("db.service") == c.running("log.service") == ["m2"],
                "both moved to m2",
            )
