"""The agent's part of maintenance (fleetd/agent/actions.py) over the in-memory registry,
with a scripted HostActions: taking an action by compare-and-swap, reports, a fleetd
restarted while its command runs, a command from an earlier boot; the reboot flag."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from fleetd.agent.actions import ActionRunner, RebootFlag
from fleetd.agent.hostactions import CommandResult, unit_for
from fleetd.errors import NotFound, SystemdError
from fleetd.maintenance.record import Action, ActionKind, ActionState, MachineAction
from fleetd.maintenance.store import MaintenanceStore
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store

CMD = Action(ActionKind.COMMAND, ("/usr/bin/upgrade", "-y"))


class Host:
    """Scripted: ``start`` fails with ``refuse``; a command ends after ``polls`` looks."""

    def __init__(self, status: int = 0, polls: int = 2, refuse: str = "") -> None:
        self.status, self.polls, self.refuse = status, polls, refuse
        self.started: list[tuple[str, tuple[str, ...]]] = []
        self.looks = 0
        self.cleaned: list[str] = []
        self.reboots = 0
        self.rebooted = asyncio.Event()
        self.reboot_error = ""

    async def reboot(self) -> None:
        self.reboots += 1
        self.rebooted.set()
        if self.reboot_error:
            raise SystemdError(self.reboot_error)

    async def start(self, unit: str, argv: Sequence[str]) -> None:
        if self.refuse:
            raise SystemdError(self.refuse)
        self.started.append((unit, tuple(argv)))

    async def result(self, unit: str) -> CommandResult | None:
        if unit in self.cleaned:
            raise NotFound(unit)
        self.looks += 1
        if self.looks < self.polls:
            return None
        return CommandResult(self.status, "line 1\nlast line")

    async def clean(self, unit: str) -> None:
        self.cleaned.append(unit)


@contextlib.asynccontextmanager
async def runner(host: Host, boot: str = "b2") -> AsyncIterator[tuple[MaintenanceStore, Store]]:
    registry = MemoryRegistry()
    store = Store(registry)
    agent = ActionRunner(store, "m1", boot, host, wall=lambda: 5.0, poll=0.001)
    task = asyncio.create_task(agent.run())
    try:
        yield MaintenanceStore(store), store
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await registry.close()


async def state(records: MaintenanceStore, *wanted: ActionState) -> MachineAction:
    async with asyncio.timeout(5):
        while True:
            found = await records.get_action("m1")
            if found is not None and found[0].state in wanted:
                return found[0]
            await asyncio.sleep(0.002)


async def ask(records: MaintenanceStore, action: MachineAction) -> None:
    await records.store.registry.put(
        records.keys.machine_action("m1"), records.action_op("m1", action).value
    )


async def test_a_command_is_run_followed_and_reported() -> None:
    host = Host(status=0)
    async with runner(host) as (records, _):
        await ask(records, MachineAction("mt/m1", CMD, boot_id="b2"))
        done = await state(records, ActionState.DONE)
        assert done.exit_status == 0 and done.message == "last line" and done.boot_id == "b2"
        assert host.started == [(unit_for("mt/m1"), CMD.argv)]
        assert host.cleaned == [unit_for("mt/m1")]


async def test_a_failing_or_refused_command_is_reported_failed() -> None:
    async with runner(Host(status=3)) as (records, _):
        await ask(records, MachineAction("mt/m1", CMD))
        failed = await state(records, ActionState.FAILED)
        assert failed.exit_status == 3 and failed.message == "last line"
    async with runner(Host(refuse="Failed to find executable /usr/bin/upgrade")) as (records, _):
        await ask(records, MachineAction("mt/m1", CMD))
        failed = await state(records, ActionState.FAILED)
        assert failed.exit_status is None
        assert failed.message == "Failed to find executable /usr/bin/upgrade"


async def test_a_reboot_is_reported_before_systemd_is_asked() -> None:
    host = Host()
    async with runner(host) as (records, _):
        await ask(records, MachineAction("mt/m1", Action(), boot_id="b2"))
        rebooting = await state(records, ActionState.REBOOTING)
        assert rebooting.boot_id == "b2"
        async with asyncio.timeout(5):
            await host.rebooted.wait()
    host = Host()
    host.reboot_error = "Access denied"
    async with runner(host) as (records, _):
        await ask(records, MachineAction("mt/m1", Action()))
        failed = await state(records, ActionState.FAILED)
        assert failed.message == "Access denied"


async def test_after_a_restart_a_running_command_is_followed_again() -> None:
    host = Host(polls=3)
    async with runner(host) as (records, _):
        await ask(records, MachineAction("mt/m1", CMD, ActionState.RUNNING, boot_id="b2"))
        done = await state(records, ActionState.DONE)
        assert done.exit_status == 0 and host.started == []  # not started twice
    async with runner(Host()) as (records, _):
        await ask(records, MachineAction("mt/m1", CMD, ActionState.RUNNING, boot_id="b1"))
        failed = await state(records, ActionState.FAILED)
        assert failed.message == "the machine rebooted while it ran"


async def test_actions_of_other_machines_and_reports_are_left_alone() -> None:
    host = Host()
    async with runner(host) as (records, store):
        await store.registry.put(
            records.keys.machine_action("m10"),
            records.action_op("m10", MachineAction("mt/m10", CMD)).value,
        )
        await ask(records, MachineAction("mt/m1", CMD, ActionState.DONE, exit_status=0))
        # A later action of m1's own, taken and done: the runner has seen the two before it.
        await ask(records, MachineAction("mt2/m1", CMD))
        await state(records, ActionState.DONE)
        assert host.started == [(unit_for("mt2/m1"), CMD.argv)]
        found = await records.get_action("m10")
        assert found is not None and found[0].state is ActionState.REQUESTED


async def test_the_reboot_flag_asks_once_with_the_window(tmp_path: Path) -> None:
    registry = MemoryRegistry()
    store = Store(registry)
    flag = tmp_path / "reboot-required"
    asker = RebootFlag(
        store, "m1", str(flag), window="Sun 03:00 2h", wall=lambda: 9.0, utc_offset=lambda: 3600
    )
    records = MaintenanceStore(store)
    task = asyncio.create_task(asker.run())
    asker.poll = 0.001
    try:
        async with asyncio.timeout(5):
            while asker.looks < 3:  # noqa: ASYNC110 (the asker's own loop)
                await asyncio.sleep(0.001)
        assert await records.list_requests() == {}
        flag.write_text("")
        async with asyncio.timeout(5):
            while not await records.list_requests():  # noqa: ASYNC110 (registry state)
                await asyncio.sleep(0.002)
        [request] = (await records.list_requests()).values()
        assert (request.machine, request.since, request.window, request.utc_offset) == (
            "m1",
            9.0,
            "Sun 03:00 2h",
            3600,
        )
        assert request.reason == f"{flag} exists"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await registry.close()


async def test_an_empty_reboot_flag_path_asks_never() -> None:
    registry = MemoryRegistry()
    async with asyncio.timeout(1):
        await RebootFlag(Store(registry), "m1", "").run()  # returns at once
    await registry.close()
