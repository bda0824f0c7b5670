"""The agent's part of a maintenance: run the action the engine leader asks of this
machine (``machine-actions/<machine>``) and report on it, and ask for a reboot when
the machine needs one.

``ActionRunner`` watches its machine's action key.  A ``requested`` action is taken by
compare-and-swap (so a report never lands on a newer request): a reboot is reported
``rebooting`` before systemd is asked (the leader sees it done by the machine's new
boot id); a command is reported ``running``, started as a transient service
(fleetd/agent/hostactions.py), polled, and reported ``done`` (exit status 0) or
``failed`` with its exit status and last output lines.  A fleetd restarted while its
command runs picks the command up again; one that finds its command was running in
an earlier boot reports it failed (the machine rebooted under it).

``RebootFlag`` looks every ``poll`` seconds for the file that says the machine needs
a reboot (Debian's ``/run/reboot-required``) and asks for one
(``reboot-requests/<machine>``) with its ``maintenance_window``; the leader serves it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from fleetd.agent.hostactions import HostActions, unit_for
from fleetd.errors import Conflict, FleetError, NotFound, RegistryError
from fleetd.maintenance.record import ActionKind, ActionState, MachineAction, RebootRequest
from fleetd.maintenance.store import MaintenanceStore
from fleetd.registry.store import Snapshot, Store
from fleetd.retry import Backoff

log = logging.getLogger(__name__)


class ActionRunner:
    def __init__(
        self,
        store: Store,
        machine_id: str,
        boot_id: str,
        host: HostActions,
        *,
        wall: Callable[[], float] = time.time,
        poll: float = 1.0,
    ) -> None:
        self.records = MaintenanceStore(store)
        self.store = store
        self.machine = machine_id
        self.boot_id = boot_id
        self.host = host
        self.wall = wall
        self.poll = poll
        self.key = store.keys.machine_action(machine_id)
        self._changed = asyncio.Event()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._follow(), name="maintenance-action-watch")
            group.create_task(self._work(), name="maintenance-action")

    async def _follow(self) -> None:
        backoff = Backoff("maintenance actions: watch", log)
        while True:
            try:
                async for item in self.store.mirror(self.key):
                    backoff.succeeded()
                    if isinstance(item, Snapshot):
                        mine = any(k == self.key for k in item.items)
                    else:
                        mine = any(e.key == self.key for e in item.events)
                    if mine:
                        self._changed.set()
            except RegistryError as exc:
                await backoff.failed(exc)

    async def _work(self) -> None:
        """One action at a time: a command is followed to its end before the next look."""
        backoff = Backoff("maintenance actions", log)
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self._look()
                backoff.succeeded()
            except RegistryError as exc:
                self._changed.set()
                await backoff.failed(exc)

    async def _look(self) -> None:
        found = await self.records.get_action(self.machine)
        if found is None:
            return
        action, revision = found
        try:
            if action.state is ActionState.REQUESTED:
                await self._take(action, revision)
            elif action.state is ActionState.RUNNING and action.action.kind is ActionKind.COMMAND:
                if action.boot_id != self.boot_id:
                    why = "the machine rebooted while it ran"
                    await self._report(action, revision, ActionState.FAILED, None, why)
                else:  # fleetd was restarted while it ran: follow it again
                    await self._watch(action, revision)
        except Conflict as exc:
            log.info("maintenance action %s: %s", action.id, exc)

    async def _take(self, action: MachineAction, revision: int) -> None:
        if action.action.kind is ActionKind.REBOOT:
            revision = await self._report(action, revision, ActionState.REBOOTING)
            log.info("maintenance action %s: rebooting the machine", action.id)
            try:
                await self.host.reboot()
            except FleetError as exc:
                log.error("maintenance action %s: %s", action.id, exc)
                await self._report(action, revision, ActionState.FAILED, None, str(exc))
            return
        revision = await self._report(action, revision, ActionState.RUNNING)
        log.info("maintenance action %s: running %s", action.id, " ".join(action.action.argv))
        try:
            await self.host.start(unit_for(action.id), action.action.argv)
        except FleetError as exc:
            await self._report(action, revision, ActionState.FAILED, None, str(exc))
            return
        await self._watch(action, revision)

    async def _watch(self, action: MachineAction, revision: int) -> None:
        """Poll the command until it ended, then report (the key must be as written:
        ``revision`` is that of the ``running`` report)."""
        unit = unit_for(action.id)
        while True:
            try:
                result = await self.host.result(unit)
            except NotFound:
                await self._quiet_report(action, revision, None, "its result is lost")
                return
            except FleetError as exc:
                log.warning("maintenance action %s: %s", action.id, exc)
                result = None
            if result is not None:
                message = result.output.splitlines()[-1] if result.output else ""
                await self._quiet_report(action, revision, result.exit_status, message)
                try:
                    await self.host.clean(unit)
                except FleetError as exc:
                    log.warning("maintenance action %s: cleaning up: %s", action.id, exc)
                return
            await asyncio.sleep(self.poll)

    async def _quiet_report(
        self, action: MachineAction, revision: int, status: int | None, message: str
    ) -> None:
        state = ActionState.DONE if status == 0 else ActionState.FAILED
        log.info("maintenance action %s: %s (status %s) %s", action.id, state, status, message)
        backoff = Backoff(f"maintenance action {action.id}: report", log)
        while True:
            try:
                await self._report(action, revision, state, status, message)
                return
            except Conflict:
                return  # asked anew, or cleared: the report is moot
            except RegistryError as exc:
                await backoff.failed(exc)
                found = await self.records.get_action(self.machine)
                if found is None or found[0].id != action.id:
                    return
                revision = found[1]

    async def _report(
        self,
        action: MachineAction,
        revision: int,
        state: ActionState,
        status: int | None = None,
        message: str = "",
    ) -> int:
        new = replace(
            action,
            state=state,
            boot_id=self.boot_id,
            exit_status=status,
            message=message,
            since=self.wall(),
        )
        return await self.records.report(self.machine, new, revision)


class RebootFlag:
    def __init__(
        self,
        store: Store,
        machine_id: str,
        path: str,
        *,
        window: str = "",
        wall: Callable[[], float] = time.time,
        utc_offset: Callable[[], int] = lambda: time.localtime().tm_gmtoff,
        poll: float = 5.0,
    ) -> None:
        self.records = MaintenanceStore(store)
        self.machine = machine_id
        self.path = Path(path) if path else None
        self.window = window
        self.wall = wall
        self.utc_offset = utc_offset
        self.poll = poll
        self.asked = False
        self.looks = 0  # how many times the flag was looked for (tests wait on it)

    async def run(self) -> None:
        if self.path is None:
            return
        backoff = Backoff("reboot request", log)
        while True:
            self.looks += 1
            if not self.asked and self.path.exists():
                try:
                    await self.ask()
                    backoff.succeeded()
                except RegistryError as exc:
                    await backoff.failed(exc)
                    continue
            await asyncio.sleep(self.poll)

    async def ask(self) -> None:
        request = RebootRequest(
            self.machine,
            since=self.wall(),
            reason=f"{self.path} exists",
            window=self.window,
            utc_offset=self.utc_offset(),
        )
        if await self.records.request(request):
            log.info("asked for a reboot: %s", request.reason)
        self.asked = True
