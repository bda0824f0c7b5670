"""The UnitManager contract (fleetd/agent/units.py), as test functions over a ``backend``.

Run against ``FakeSystemd`` by tests/component/test_unit_manager_contract.py and
against ``SystemdManager`` on a sandbox machine's systemd by
tests/integration/test_unit_manager_systemd.py: each defines the ``backend``
fixture and imports these tests.  What is checked is only what the agent
relies on; both must pass every test here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import pytest

from fleetd.agent.units import BAD_UNIT_SETTING, NO_SUCH_UNIT, UnitManager, UnitStatus, not_found
from fleetd.errors import InvalidInput, SystemdError, SystemdUnavailable

SLEEPER = "[Unit]\nDescription=sleeper\n\n[Service]\nExecStart=/bin/sleep 100000\n"
FAILS = "[Service]\nExecStart=/bin/false\n"
ONESHOT = "[Service]\nType=oneshot\nExecStart={program}\n"
NO_EXEC = "[Unit]\nDescription=no ExecStart\n\n[Service]\nType=simple\n"
INSTALL = SLEEPER + "\n[Install]\nWantedBy=multi-user.target\n"
TIMER = "[Timer]\nOnActiveSec=1h\n"


class Backend(Protocol):
    """One systemd and a ``UnitManager`` connected to it; files live in a private directory."""

    manager: UnitManager
    seen: list[UnitStatus]  # every status the manager reported through on_change

    def name(self, stem: str, suffix: str = ".service") -> str:
        """A unit name no other test or run uses."""
        ...

    def write(self, name: str, text: str) -> str:
        """Write unit file ``name``; returns its path as systemd sees it (for ``link``)."""
        ...

    def remove(self, name: str) -> None: ...

    def runtime_link(self, relative: str) -> bool:
        """True if ``<runtime unit dir>/<relative>`` is a symlink."""
        ...

    async def systemctl(self, verb: str, name: str) -> None:
        """``systemctl VERB NAME`` by someone else on the machine."""
        ...

    async def new_manager(self, job_timeout: float) -> UnitManager:
        """Another manager of the same systemd, connected, with ``job_timeout``."""
        ...


@dataclass
class Recorder:
    """on_change / on_shutdown callbacks that remember what they were told."""

    seen: list[UnitStatus] = field(default_factory=list)
    shutdowns: int = 0

    def change(self, status: UnitStatus) -> None:
        self.seen.append(status)

    def shutdown(self) -> None:
        self.shutdowns += 1


async def eventually(condition: Callable[[], bool], what: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within}s: {what}")
        await asyncio.sleep(0.01)


def state(backend: Backend, name: str) -> tuple[str, str, str] | None:
    status = backend.manager.status.get(name)
    return None if status is None else (status.load_state, status.active_state, status.sub_state)


async def reaches(backend: Backend, name: str, active: str, sub: str) -> None:
    await eventually(
        lambda: state(backend, name) == ("loaded", active, sub), f"{name} {active}/{sub}"
    )


async def linked(backend: Backend, stem: str, text: str, suffix: str = ".service") -> str:
    name = backend.name(stem, suffix)
    await backend.manager.link([backend.write(name, text)])
    await backend.manager.track([name])
    return name


async def test_a_unit_without_a_file_is_not_found(backend: Backend) -> None:
    name = backend.name("ghost")
    assert await backend.manager.list_units([name]) == {name: not_found(name)}
    assert await backend.manager.list_units([]) == {}


async def test_a_linked_file_is_loaded_and_tracking_reports_it(backend: Backend) -> None:
    name = await linked(backend, "linked", SLEEPER)
    assert state(backend, name) == ("loaded", "inactive", "dead")
    assert backend.seen[-1] == UnitStatus(name, "loaded", "inactive", "dead")


async def test_a_file_linked_after_the_unit_was_found_missing_is_seen(backend: Backend) -> None:
    name = backend.name("late")
    assert (await backend.manager.list_units([name]))[name].load_state == "not-found"
    await backend.manager.link([backend.write(name, SLEEPER)])
    await backend.manager.track([name])
    assert state(backend, name) == ("loaded", "inactive", "dead")


async def test_start_and_stop_a_service(backend: Backend) -> None:
    name = await linked(backend, "svc", SLEEPER)
    assert await backend.manager.start(name) == "done"
    await reaches(backend, name, "active", "running")
    assert await backend.manager.start(name) == "done"  # already running: nothing to do
    assert await backend.manager.stop(name) == "done"
    await reaches(backend, name, "inactive", "dead")
    reported = [(s.active_state, s.sub_state) for s in backend.seen if s.name == name]
    assert ("active", "running") in reported
    assert reported[-1] == ("inactive", "dead")


async def test_stop_of_an_inactive_or_unknown_unit_is_done(backend: Backend) -> None:
    name = await linked(backend, "idle", SLEEPER)
    assert await backend.manager.stop(name) == "done"
    assert await backend.manager.stop(backend.name("unknown")) == "done"
    assert state(backend, name) == ("loaded", "inactive", "dead")


async def test_start_of_a_unit_without_a_file_fails_with_no_such_unit(backend: Backend) -> None:
    name = backend.name("missing")
    with pytest.raises(SystemdError) as raised:
        await backend.manager.start(name)
    assert raised.value.name == NO_SUCH_UNIT
    assert not isinstance(raised.value, SystemdUnavailable)


async def test_a_file_systemd_refuses_is_bad_setting_and_cannot_start(backend: Backend) -> None:
    name = await linked(backend, "noexec", NO_EXEC)
    assert state(backend, name) == ("bad-setting", "inactive", "dead")
    with pytest.raises(SystemdError) as raised:
        await backend.manager.start(name)
    assert raised.value.name == BAD_UNIT_SETTING


async def test_a_service_whose_program_fails_ends_failed(backend: Backend) -> None:
    name = await linked(backend, "fails", FAILS)
    assert await backend.manager.start(name) == "done"  # a simple service: started, then failed
    await reaches(backend, name, "failed", "failed")
    assert await backend.manager.stop(name) == "done"  # not running: nothing to stop
    await backend.manager.resync()
    assert state(backend, name) == ("loaded", "failed", "failed")
    await backend.manager.reset_failed(name)
    await reaches(backend, name, "inactive", "dead")
    await backend.manager.reset_failed(backend.name("unknown"))  # no such unit: no error


async def test_oneshot_jobs_wait_for_the_program(backend: Backend) -> None:
    ok = await linked(backend, "once", ONESHOT.format(program="/bin/true"))
    assert await backend.manager.start(ok) == "done"
    await reaches(backend, ok, "inactive", "dead")
    kept = await linked(
        backend, "kept", ONESHOT.format(program="/bin/true") + "RemainAfterExit=yes\n"
    )
    assert await backend.manager.start(kept) == "done"
    await reaches(backend, kept, "active", "exited")
    bad = await linked(backend, "oncebad", ONESHOT.format(program="/bin/false"))
    assert await backend.manager.start(bad) == "failed"
    await reaches(backend, bad, "failed", "failed")


async def test_a_job_still_running_after_the_job_timeout_is_timeout(backend: Backend) -> None:
    name = backend.name("slow")
    await backend.manager.link([backend.write(name, ONESHOT.format(program="/bin/sleep 1000"))])
    manager = await backend.new_manager(job_timeout=0.3)
    try:
        await manager.track([name])
        assert await manager.start(name) == "timeout"
        await eventually(
            lambda: manager.status[name].active_state == "activating", "oneshot activating"
        )
        assert await manager.stop(name) == "done"
        # a oneshot stopped before its program exited did not succeed
        await eventually(lambda: manager.status[name].active_state == "failed", "stopped")
    finally:
        await manager.close()


async def test_timers_wait(backend: Backend) -> None:
    stem = backend.name("tick", "")
    name = f"{stem}.timer"
    service = backend.write(f"{stem}.service", ONESHOT.format(program="/bin/true"))
    await backend.manager.link([service, backend.write(name, TIMER)])
    await backend.manager.track([name])
    assert await backend.manager.start(name) == "done"
    await reaches(backend, name, "active", "waiting")
    assert await backend.manager.stop(name) == "done"
    await reaches(backend, name, "inactive", "dead")


async def test_an_instance_file_is_loaded_under_its_own_name(backend: Backend) -> None:
    stem = backend.name("app", "")
    name = f"{stem}@7.service"
    text = "[Unit]\nDescription=app %i\n\n[Service]\nExecStart=/bin/sleep 100000\n"
    await backend.manager.link([backend.write(name, text)])
    await backend.manager.track([name])
    assert await backend.manager.start(name) == "done"
    await reaches(backend, name, "active", "running")


async def test_enable_and_disable_make_and_remove_the_install_links(backend: Backend) -> None:
    name = backend.name("inst")
    await backend.manager.link([backend.write(name, INSTALL)])
    await backend.manager.enable([name])
    assert backend.runtime_link(f"multi-user.target.wants/{name}")
    await backend.manager.disable([name])
    assert not backend.runtime_link(f"multi-user.target.wants/{name}")
    await backend.manager.enable([])
    await backend.manager.disable([])


async def test_unit_files_that_do_not_exist_cannot_be_linked_enabled_or_disabled(
    backend: Backend,
) -> None:
    missing = backend.name("nofile")
    for call in (
        backend.manager.link([f"/nonexistent/{missing}"]),
        backend.manager.enable([missing]),
        backend.manager.disable([missing]),
    ):
        with pytest.raises(SystemdError) as raised:
            await call
        assert raised.value.name == NO_SUCH_UNIT
        assert "does not exist" in str(raised.value)


async def test_unlink_and_reload_forget_the_unit(backend: Backend) -> None:
    name = backend.name("gone")
    path = backend.write(name, SLEEPER)
    await backend.manager.link([path])
    await backend.manager.track([name])
    assert backend.runtime_link(name)
    backend.manager.unlink(path + ".other")  # another file: the link stays
    assert backend.runtime_link(name)
    backend.manager.unlink(path)
    assert not backend.runtime_link(name)
    backend.remove(name)
    await backend.manager.reload()
    await backend.manager.resync()
    assert state(backend, name) == ("not-found", "inactive", "dead")


async def test_reload_reads_a_changed_file(backend: Backend) -> None:
    name = await linked(backend, "changed", ONESHOT.format(program="/bin/false"))
    assert await backend.manager.start(name) == "failed"
    backend.write(name, ONESHOT.format(program="/bin/true"))
    await backend.manager.reload()
    await backend.manager.reset_failed(name)
    assert await backend.manager.start(name) == "done"
    await reaches(backend, name, "inactive", "dead")


async def test_changes_made_by_someone_else_are_reported(backend: Backend) -> None:
    name = await linked(backend, "outside", SLEEPER)
    assert await backend.manager.start(name) == "done"
    await reaches(backend, name, "active", "running")
    await backend.systemctl("stop", name)
    await reaches(backend, name, "inactive", "dead")
    await backend.systemctl("start", name)
    await reaches(backend, name, "active", "running")


async def test_untracked_units_are_no_longer_reported(backend: Backend) -> None:
    name = await linked(backend, "untracked", SLEEPER)
    backend.manager.untrack([name])
    assert name not in backend.manager.status
    before = len(backend.seen)
    assert await backend.manager.start(name) == "done"
    other = await linked(backend, "marker", SLEEPER)  # a later report, to know signals came
    assert await backend.manager.start(other) == "done"
    await reaches(backend, other, "active", "running")
    assert [s for s in backend.seen[before:] if s.name == name] == []
    assert name not in backend.manager.status


async def test_resync_reads_every_tracked_unit(backend: Backend) -> None:
    names = [await linked(backend, f"re{i}", SLEEPER) for i in range(3)]
    await backend.manager.resync()
    assert {n: state(backend, n) for n in names} == {
        n: ("loaded", "inactive", "dead") for n in names
    }


async def test_calls_need_a_connection(backend: Backend) -> None:
    name = await linked(backend, "conn", SLEEPER)
    manager = backend.manager
    assert manager.connected
    await manager.close()
    assert not manager.connected
    await manager.wait_disconnected()  # returns at once
    with pytest.raises(SystemdUnavailable):
        await manager.start(name)
    with pytest.raises(SystemdUnavailable):
        await manager.list_units([name])
    await manager.connect()
    assert manager.connected
    assert await manager.system_state() in ("running", "degraded")
    assert await manager.start(name) == "done"
    await reaches(backend, name, "active", "running")


async def running(backend: Backend, stem: str) -> str:
    name = await linked(backend, stem, SLEEPER)
    assert await backend.manager.start(name) == "done"
    await reaches(backend, name, "active", "running")
    return name


async def test_an_armed_fence_stops_its_units_by_itself(backend: Backend) -> None:
    fenced, other = await running(backend, "fenced"), await running(backend, "spared")
    armed = time.monotonic()
    await backend.manager.arm_fence([fenced, backend.name("unknown")], 0.5)
    await backend.manager.close()  # the fence outlives the connection (and the process)
    manager = await backend.new_manager(job_timeout=30.0)
    await manager.track([fenced, other])
    await eventually(lambda: manager.status[fenced].active_state == "inactive", "fenced stopped")
    assert time.monotonic() - armed >= 0.45
    await manager.resync()
    assert manager.status[other].active_state == "active"


async def test_arming_again_replaces_the_fence_and_its_deadline(backend: Backend) -> None:
    first, second = await running(backend, "first"), await running(backend, "second")
    await backend.manager.arm_fence([first], 0.5)
    armed = time.monotonic()
    await backend.manager.arm_fence([second], 1.5)
    await reaches(backend, second, "inactive", "dead")
    assert time.monotonic() - armed >= 1.4  # the new deadline, not the first one
    await backend.manager.resync()
    assert state(backend, first) == ("loaded", "active", "running")


async def test_a_fence_armed_by_an_earlier_process_is_replaced(backend: Backend) -> None:
    old, new = await running(backend, "old"), await running(backend, "new")
    await backend.manager.arm_fence([old], 0.5)
    await backend.manager.close()  # the agent died; a new one re-arms
    manager = await backend.new_manager(job_timeout=30.0)
    await manager.track([old, new])
    await manager.arm_fence([new], 1.0)
    await eventually(lambda: manager.status[new].active_state == "inactive", "new stopped")
    await manager.resync()
    assert manager.status[old].active_state == "active"


async def test_a_disarmed_fence_stops_nothing(backend: Backend) -> None:
    kept, marker = await running(backend, "kept"), await running(backend, "marker")
    await backend.manager.arm_fence([kept], 0.5)
    await backend.manager.disarm_fence()
    await backend.manager.disarm_fence()  # nothing armed: nothing to do
    await backend.manager.arm_fence([marker], 1.0)  # fires after the first deadline
    await reaches(backend, marker, "inactive", "dead")
    await backend.manager.disarm_fence()
    await backend.manager.resync()
    assert state(backend, kept) == ("loaded", "active", "running")


async def test_a_fence_needs_units_and_a_time_to_come(backend: Backend) -> None:
    name = await running(backend, "bad")
    for names, within in (([], 1.0), ([name], -1.0), ([name], float("nan"))):
        with pytest.raises(InvalidInput):
            await backend.manager.arm_fence(names, within)
    await backend.manager.close()
    with pytest.raises(SystemdUnavailable):
        await backend.manager.arm_fence([name], 1.0)
    with pytest.raises(SystemdUnavailable):
        await backend.manager.disarm_fence()
