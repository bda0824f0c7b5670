"""The agent under faults: a partition fences AtMostOnce units; a powered-off machine's
states vanish with its lease."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from agent_harness import AgentHarness, until

from fleetd.sandbox.cluster import Sandbox

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(240)]

TTL = 6.0
SLEEPER = "[Unit]\nDescription={what}\n\n[Service]\nExecStart=/bin/sleep 100000\n"
AT_MOST_ONCE = SLEEPER + "\n[X-Fleet]\nAtMostOnce=true\n"


@pytest.fixture
async def agent(sandbox: Sandbox) -> AsyncIterator[AgentHarness]:
    harness = AgentHarness(sandbox, "m2", ttl=TTL)
    harness.start()
    try:
        await until(harness.registered, 20, "agent did not register")
        yield harness
    finally:
        if sandbox.machine("m2").partitioned:
            sandbox.heal("m2")
        if not sandbox.running("m2"):
            sandbox.boot("m2")
        await harness.close()


async def both_active(agent: AgentHarness, *names: str) -> bool:
    states = await agent.states()
    return all(n in states and states[n].active_state == "active" for n in names)


async def test_partition_stops_at_most_once_units_before_the_ttl(
    sandbox: Sandbox, agent: AgentHarness
) -> None:
    single, plain = agent.unit("single"), agent.unit("plain")
    await agent.schedule(single, AT_MOST_ONCE.format(what="at most once"))
    await agent.schedule(plain, SLEEPER.format(what="plain"))
    await until(lambda: both_active(agent, single, plain), 20, "units did not start")

    cut = time.monotonic()
    sandbox.partition("m2")

    async def single_stopped() -> bool:
        return agent.active(single) == "inactive"

    await until(single_stopped, TTL + 2, "AtMostOnce unit was not stopped")
    stopped_after = time.monotonic() - cut
    assert stopped_after < TTL, f"stopped {stopped_after:.1f}s after the partition (TTL {TTL}s)"
    assert agent.active(plain) == "active"
    assert any(a.startswith(f"stop unit={single}") for a in agent.actions())
    assert not any(a.startswith(f"stop unit={plain}") for a in agent.actions())

    sandbox.heal("m2")

    async def single_back() -> bool:
        return agent.active(single) == "active"

    await until(single_back, 3 * TTL, "AtMostOnce unit did not restart after the heal")
    await until(lambda: both_active(agent, single, plain), 10, "states not published again")


async def test_poweroff_states_vanish_with_the_lease(sandbox: Sandbox, agent: AgentHarness) -> None:
    name = agent.unit("doomed")
    await agent.schedule(name, SLEEPER.format(what="doomed"))
    await until(lambda: both_active(agent, name), 20, "unit did not start")

    sandbox.poweroff("m2")
    off = time.monotonic()

    async def gone() -> bool:
        return not await agent.states() and not await agent.registered()

    # The agent sees systemd stopping and releases the lease: well before the TTL.
    await until(gone, TTL / 2, "states of the powered-off machine did not vanish at once")
    print(f"states gone {time.monotonic() - off:.2f}s after power-off returned")


async def test_an_agent_killed_and_back_before_its_deadline_keeps_its_at_most_once_unit(
    sandbox: Sandbox,
) -> None:
    """fleetd's agent SIGKILLed just after a keep-alive and started again: it re-attaches
    to its lease and pushes systemd's fence back before it fires (TTL 30 s: the fence
    would fire 24 s after that keep-alive); the unit keeps its MainPID throughout."""
    agent = AgentHarness(sandbox, "m2", ttl=30.0)
    agent.start()
    try:
        await until(agent.registered, 20, "agent did not register")
        once = agent.unit("once")
        await agent.schedule(once, AT_MOST_ONCE.format(what="at most once"))
        await until(lambda: both_active(agent, once), 20, "unit did not start")
        pid, since = agent.main_pid(once), agent.show(once, "ActiveEnterTimestampMonotonic")
        kv = await agent.registry.get(agent.keys.machine(agent.machine_id))
        assert kv is not None
        last = [await agent.registry.lease_ttl(kv.lease)]

        async def renewed() -> bool:  # etcd's TTL left (whole seconds) went back up
            left = await agent.registry.lease_ttl(kv.lease)
            up, last[0] = left > last[0], left
            return up

        await until(renewed, 30, "no keep-alive", interval=0.05)
        agent.kill()
        killed = time.monotonic()
        agent.start()
        await until(agent.reattached, 30, "the agent did not re-attach to its lease")

        async def past_the_old_deadline() -> bool:
            return time.monotonic() > killed + 25

        await until(past_the_old_deadline, 30, "time", interval=0.5)
        assert (agent.main_pid(once), agent.active(once)) == (pid, "active")
        assert agent.show(once, "ActiveEnterTimestampMonotonic") == since
    finally:
        await agent.close()
