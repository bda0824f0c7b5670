"""The agent in a sandbox machine with real etcd and systemd, driven through the registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from agent_harness import AgentHarness, until

from fleetd.model import DesiredState
from fleetd.registry.base import EventType
from fleetd.sandbox.cluster import Sandbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SLEEPER = "[Unit]\nDescription=sleeper {tag}\n\n[Service]\nExecStart=/bin/sleep 100000\n"


@pytest.fixture
async def agent(sandbox: Sandbox) -> AsyncIterator[AgentHarness]:
    harness = AgentHarness(sandbox, "m3")
    harness.start()
    try:
        await until(harness.registered, 20, "agent did not register")
        yield harness
    finally:
        await harness.close()


async def wait_state(agent: AgentHarness, name: str, active: str, within: float = 15) -> None:
    async def probe() -> bool:
        state = await agent.state(name)
        return state is not None and state.active_state == active

    await until(probe, within, f"{name} never published active_state={active}")


async def test_load_start_stop_unload(agent: AgentHarness) -> None:
    name = agent.unit("svc")
    hash_ = await agent.schedule(name, SLEEPER.format(tag=1))
    await wait_state(agent, name, "active")
    state = await agent.state(name)
    assert state is not None
    assert (state.hash, state.load_state, state.sub_state) == (hash_, "loaded", "running")
    assert agent.active(name) == "active"

    await agent.schedule(name, SLEEPER.format(tag=1), DesiredState.LOADED)
    await wait_state(agent, name, "inactive")
    assert agent.show(name, "LoadState") == "loaded"
    assert agent.file_exists(f"{agent.units_directory}/{name}")

    await agent.unschedule(name)

    async def gone() -> bool:
        return await agent.state(name) is None

    await until(gone, 15, "state of the unloaded unit was not removed")
    assert not agent.file_exists(f"{agent.units_directory}/{name}")
    assert not agent.file_exists(f"/run/systemd/system/{name}")
    assert agent.show(name, "LoadState") == "not-found"
    log = agent.actions()
    assert f"load unit={name} reason='scheduled but not loaded'" in log
    assert f"stop unit={name} reason='desired loaded'" in log
    assert f"unload unit={name} reason='unit no longer scheduled'" in log


async def test_template_instance(agent: AgentHarness) -> None:
    name = f"web-{agent.tag}@7.service"
    text = "[Unit]\nDescription=web instance %i\n\n[Service]\nExecStart=/bin/sleep 100000\n"
    await agent.schedule(name, text)
    await wait_state(agent, name, "active")
    assert agent.show(name, "Description") == "web instance 7"


async def test_unit_with_install_is_enabled_and_disabled(agent: AgentHarness) -> None:
    name = agent.unit("inst")
    text = SLEEPER.format(tag=2) + "\n[Install]\nWantedBy=multi-user.target\n"
    await agent.schedule(name, text)
    await wait_state(agent, name, "active")
    wants = f"/run/systemd/system/multi-user.target.wants/{name}"
    assert agent.file_exists(wants)
    await agent.unschedule(name)

    async def gone() -> bool:
        return await agent.state(name) is None

    await until(gone, 15, "state of the unloaded unit was not removed")
    assert not agent.file_exists(wants)


async def test_failing_unit_shows_failed_and_is_not_restarted(agent: AgentHarness) -> None:
    name = agent.unit("broken")
    await agent.schedule(name, "[Service]\nExecStart=/bin/false\n")
    await wait_state(agent, name, "failed")
    state = await agent.state(name)
    assert state is not None and state.sub_state == "failed"
    other = agent.unit("after")
    await agent.schedule(other, SLEEPER.format(tag=3))  # triggers more passes
    await wait_state(agent, other, "active")
    starts = [a for a in agent.actions() if a.startswith(f"start unit={name} reason=")]
    assert len(starts) == 1, starts


async def test_hash_change_replaces_the_running_unit(agent: AgentHarness) -> None:
    name = agent.unit("change")
    await agent.schedule(name, SLEEPER.format(tag="v1"))
    await wait_state(agent, name, "active")
    pid = agent.main_pid(name)
    new_hash = await agent.schedule(name, SLEEPER.format(tag="v2"))

    async def replaced() -> bool:
        state = await agent.state(name)
        return state is not None and state.hash == new_hash and state.active_state == "active"

    await until(replaced, 15, "unit was not replaced")
    assert agent.show(name, "Description") == "sleeper v2"
    assert agent.main_pid(name) not in (0, pid)
    assert any(a.startswith(f"stop unit={name}") and "hash changed" in a for a in agent.actions())
    assert any(f"-> {new_hash[:7]}" in a for a in agent.actions() if f"load unit={name}" in a)


async def test_restart_adopts_running_units(agent: AgentHarness) -> None:
    names = [agent.unit(f"keep{i}") for i in range(3)]
    for i, name in enumerate(names):
        await agent.schedule(name, SLEEPER.format(tag=f"keep{i}"))
    loaded = agent.unit("idle")
    await agent.schedule(loaded, SLEEPER.format(tag="idle"), DesiredState.LOADED)
    for name in names:
        await wait_state(agent, name, "active")
    await wait_state(agent, loaded, "inactive")
    pids = {name: agent.main_pid(name) for name in names}
    before = len(agent.actions())

    agent.stop()
    agent.start()
    await until(agent.reattached, 20, "restarted agent did not re-attach to its lease")
    other = agent.unit("probe")
    await agent.schedule(other, SLEEPER.format(tag="probe"))
    await wait_state(agent, other, "active")
    assert {name: agent.main_pid(name) for name in names} == pids
    after = agent.actions()[before:]
    assert all(other in a or a.startswith("reload") for a in after), after


async def test_kill_and_restart_within_ttl_keeps_the_machine(agent: AgentHarness) -> None:
    key = agent.keys.machine(agent.machine_id)
    kv = await agent.registry.get(key)
    assert kv is not None
    events: list[EventType] = []

    async def watch() -> None:
        async for batch in agent.registry.watch_prefix(key, kv.mod_revision + 1):
            events.extend(e.type for e in batch if e.key == key)

    watcher = asyncio.create_task(watch())
    try:
        agent.kill()
        await asyncio.sleep(1.0)  # fleetd is down for a while, well within the TTL
        agent.start()
        await until(agent.reattached, 20, "restarted agent did not re-attach")
        await asyncio.sleep(agent.ttl)  # past the TTL the old lease would have expired
        assert await agent.registered()
        assert EventType.DELETE not in events
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


async def test_dbus_restart_reconnects_and_follows_systemd_signals(agent: AgentHarness) -> None:
    name = agent.unit("watched")
    await agent.schedule(name, SLEEPER.format(tag="watched"))
    await wait_state(agent, name, "active")

    assert agent.exec("systemctl", "restart", "dbus.service").returncode == 0

    async def reconnected() -> bool:
        return agent.log(current=True).count("connected to systemd") >= 2

    await until(reconnected, 20, "agent did not reconnect to the system bus")
    # a change made behind the agent's back arrives as a signal (there is no polling)
    assert agent.exec("systemctl", "stop", name).returncode == 0
    await wait_state(agent, name, "inactive")
    later = agent.unit("later")
    await agent.schedule(later, SLEEPER.format(tag="later"))
    await wait_state(agent, later, "active")


async def test_bad_unit_file_shows_its_load_state_and_is_not_retried(
    agent: AgentHarness,
) -> None:
    name = agent.unit("noexec")
    await agent.schedule(name, "[Unit]\nDescription=no ExecStart\n\n[Service]\nType=simple\n")

    async def bad() -> bool:
        state = await agent.state(name)
        return state is not None and state.load_state == "bad-setting"

    await until(bad, 15, "bad-setting was not published")
    other = agent.unit("fine")
    await agent.schedule(other, SLEEPER.format(tag="fine"))  # more passes
    await wait_state(agent, other, "active")
    actions = agent.actions()
    assert len([a for a in actions if a.startswith(f"load unit={name} reason=")]) == 1, actions
    assert len([a for a in actions if a.startswith(f"start unit={name} reason=")]) == 1, actions
