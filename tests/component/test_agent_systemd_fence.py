"""systemd's own fence (fleetd/agent/fencetimer.py) on the in-process cluster: the agent
keeps a fence armed in (fake) systemd at its fencing deadline for its ``AtMostOnce``
units, so that they stop even when fleetd is dead; a fleetd back in time re-arms it.

The cluster runs on a ``ManualClock`` that the fake systemd's timers share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytest

from fleetd.agent.fencetimer import FenceTimer
from fleetd.agent.fencing import default_margin
from fleetd.agent.presence import Presence
from fleetd.agent.units import UnitManager
from fleetd.model import Machine
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store
from fleetd.testing.cluster import Cluster, ManualClock, Node, cluster

SERVICE = "[Unit]\nDescription=%n\n\n[Service]\nExecStart=/bin/sleep 1000\n"
ONCE = SERVICE + "\n[X-Fleet]\nAtMostOnce=true\n"
TTL = 30.0
MARGIN = default_margin(TTL)


async def on_m1(c: Cluster) -> Node:
    """``once.service`` (AtMostOnce) and ``web.service`` running on m1, m2 stopped."""
    m1, m2 = c.nodes["m1"], c.nodes["m2"]
    await m2.stop()
    await c.submit("once.service", ONCE)
    await c.submit("web.service", SERVICE)
    await c.wait_for(
        lambda: c.running("once.service") == c.running("web.service") == ["m1"], "both on m1"
    )
    await c.wait_for(lambda: "fleetd-fence" in m1.systemd.fences, "m1's fence armed")
    return m1


def deadline(node: Node) -> float:
    assert node.agent is not None
    return node.agent.presence.last_renewed + TTL - MARGIN


async def looked_again(c: Cluster, node: Node) -> None:
    """Wait until the fake systemd's fence timer looked at the clock twice more."""
    seen = node.systemd.fence_looks
    await c.wait_for(lambda: node.systemd.fence_looks >= seen + 2, "the fence timer looked")


async def test_the_fence_covers_at_most_once_units_before_they_start(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=2, ttl=TTL) as c:
        m1 = await on_m1(c)
        assert m1.systemd.fences["fleetd-fence"] == (("once.service",), deadline(m1))
        calls = m1.systemd.calls
        assert calls.index(("StartTransientUnit", "fleetd-fence")) < calls.index(
            ("StartUnit", "once.service")
        )


async def test_a_dead_fleetd_s_at_most_once_units_stop_before_its_lease_ends(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, machines=2, ttl=TTL) as c:
        m1 = await on_m1(c)
        fence_at = deadline(m1)
        await m1.stop()  # fleetd killed; it does not come back
        c.advance(fence_at - c.clock.now + 0.01)  # type: ignore[attr-defined]
        await c.wait_for(lambda: not m1.active("once.service"), "once stopped by systemd")
        assert m1.active("web.service")
        assert m1.systemd.fired == [("fleetd-fence", ("once.service",))]
        assert m1.id in {m.id for m in await c.store.list_machines()}  # its lease still lives
        assert c.running("once.service") == []
        m2 = c.nodes["m2"]
        m2.start()
        await c.wait_for(lambda: m2.agent is not None and m2.agent.presence.lease, "m2 is up")
        c.advance(MARGIN + 1)  # the lease ends: the engine moves the units
        await c.wait_for(lambda: "m2" in c.running("web.service"), "web started on m2")
        c.advance(TTL / 6)  # AtMostOnce units after a grace
        await c.wait_for(lambda: c.running("once.service") == ["m2"], "once moved to m2")


async def test_fleetd_back_within_the_deadline_re_arms_and_nothing_stops(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, machines=2, ttl=TTL) as c:
        m1 = await on_m1(c)
        first = deadline(m1)
        pid = m1.systemd.units["once.service"].main_pid
        await m1.stop()
        c.advance((TTL - MARGIN) / 2)
        m1.start()
        await c.wait_for(
            lambda: m1.agent is not None and m1.agent.fence_timer.arms >= 1, "re-armed"
        )
        later = deadline(m1)
        assert later > first
        assert m1.systemd.fences["fleetd-fence"] == (("once.service",), later)
        c.advance(first - c.clock.now + 1)  # type: ignore[attr-defined]
        await looked_again(c, m1)
        assert m1.systemd.fired == []
        assert m1.systemd.units["once.service"].main_pid == pid


async def test_the_fence_is_disarmed_when_no_at_most_once_unit_is_left(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=2, ttl=TTL) as c:
        m1 = await on_m1(c)
        await c.destroy("once.service")
        await c.wait_for(lambda: m1.systemd.fences == {}, "the fence disarmed")
        assert m1.active("web.service")


async def test_units_the_fence_stopped_start_again_once_the_lease_is_renewed(
    tmp_path: Path,
) -> None:
    """fleetd paused past the deadline, but not past its lease: systemd stopped the
    AtMostOnce unit; the agent, renewing its lease, starts it again."""
    async with cluster(tmp_path, machines=2, ttl=TTL) as c:
        m1 = await on_m1(c)
        agent = m1.agent
        assert agent is not None
        pid = m1.systemd.units["once.service"].main_pid
        c.advance(deadline(m1) - c.clock.now + 0.01)  # type: ignore[attr-defined]
        await c.wait_for(lambda: m1.systemd.fired != [], "the fence fired")
        await agent.presence.refresh()  # the keep-alive, late but in time for the lease
        await c.wait_for(lambda: m1.active("once.service"), "once running again")
        assert m1.systemd.units["once.service"].main_pid != pid
        assert m1.active("web.service")
        await c.wait_for(lambda: m1.systemd.fences != {}, "the fence armed again")


class SlowSystemd:
    """A ``UnitManager`` whose ``arm_fence`` takes ``delay`` seconds of ``clock``."""

    connected = True

    def __init__(self, clock: ManualClock, delay: float) -> None:
        self.clock, self.delay = clock, delay
        self.armed: list[tuple[tuple[str, ...], float]] = []

    async def arm_fence(self, names: Sequence[str], within: float) -> None:
        self.armed.append((tuple(names), within))
        self.clock.advance(self.delay)

    async def disarm_fence(self) -> None:
        self.armed.append(((), 0.0))


@pytest.mark.parametrize("delay", [0.0, 0.5])
async def test_a_fence_replaced_after_its_deadline_may_have_fired(
    tmp_path: Path, delay: float
) -> None:
    """The old timer is stopped only once the new one runs: if its deadline passed before
    that, its units may have been stopped, so they are handed back to be started."""
    clock = ManualClock()
    presence = Presence(
        store=Store(MemoryRegistry(clock)),
        machine=Machine("m1"),
        ttl=TTL,
        lease_file=tmp_path / "lease",
        clock=clock,
    )
    await presence.register()
    systemd = SlowSystemd(clock, delay)
    lapsed: list[frozenset[str]] = []
    timer = FenceTimer(
        manager=cast(UnitManager, systemd),
        presence=presence,
        margin=MARGIN,
        units=lambda: frozenset({"once.service"}),
        on_lapsed=lapsed.append,
    )
    await timer.sync()
    assert systemd.armed == [(("once.service",), TTL - MARGIN)]
    first = timer.deadline
    clock.now = first - 0.1  # renewed just before the deadline
    presence.last_renewed = clock.now
    await timer.sync()
    assert timer.deadline == clock.now - delay + TTL - MARGIN
    assert lapsed == ([frozenset({"once.service"})] if delay else [])
