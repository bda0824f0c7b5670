"""The agent: composes presence, schedule watch, systemd manager, reconciler, publisher,
health checks, fence (its own, and systemd's: fencetimer.py) and its part of
maintenance (actions, reboot requests), and supervises them all in one TaskGroup.

Whether the agent can reach systemd (``systemd``, a SystemdLink) is part of
the machine's registration (``Machine.systemd_connected``): while it cannot,
the engine places no new units here and the units already here stay.  The
first registration waits (at most ``FIRST_CONTACT`` seconds) for the first
attempt to connect, so that it already says how that went.

``run()`` returns only when the machine itself shuts down (systemd is
stopping): the lease is then revoked so the engine moves the units at once.
On a plain fleetd stop or restart (cancellation) the lease stays alive and the
units keep running; the next fleetd re-attaches and adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from fleetd import __version__
from fleetd.agent import host
from fleetd.agent.actions import ActionRunner, RebootFlag
from fleetd.agent.desired import Bodies, ScheduleView
from fleetd.agent.fencetimer import FenceTimer
from fleetd.agent.fenceunit import fence_name_for
from fleetd.agent.fencing import Fence, default_margin
from fleetd.agent.health import HealthMonitor
from fleetd.agent.hostactions import HostActions, SystemdActions
from fleetd.agent.presence import Presence
from fleetd.agent.publisher import Publisher
from fleetd.agent.reconciler import Reconciler
from fleetd.agent.systemd import SystemdManager
from fleetd.agent.unitdir import UnitDirectory
from fleetd.agent.units import UnitManager, UnitStatus
from fleetd.config import Config
from fleetd.errors import FleetError, RegistryError, SystemdError
from fleetd.model import Machine, SystemdLink
from fleetd.registry.store import Store
from fleetd.retry import Backoff, retrying

log = logging.getLogger(__name__)

DEFAULT_LEASE_FILE = "/run/fleet/lease"
CHECKED_STATES = frozenset({"active", "reloading"})
"""A unit's health check runs while systemd reports one of these."""
FIRST_CONTACT = 5.0
"""The first registration waits at most this long for the first attempt to reach systemd."""


class _MachineShutdown(Exception):
    """Ends the TaskGroup once the machine shutdown was handled."""


def machine_from_config(config: Config, machine_id: str) -> Machine:
    """This machine as it registers: host facts, overridden by the configuration."""
    return Machine(
        id=machine_id,
        hostname=host.hostname(),
        public_ip=config.public_ip or host.default_route_ip(),
        metadata=config.metadata,
        capacity=host.capacity(
            cpu_millis=config.capacity_cpu_millis,
            memory_bytes=config.capacity_memory_bytes,
            reserved_cpu_millis=config.reserved_cpu_millis,
            reserved_memory_bytes=config.reserved_memory_bytes,
        ),
        version=__version__,
        boot_id=host.boot_id(),
    )


class Agent:
    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        clock: Callable[[], float],
        machine: Machine | None = None,
        machine_id: str | None = None,
        lease_file: str | Path = DEFAULT_LEASE_FILE,
        bus_address: str | None = None,
        wall: Callable[[], float] = time.time,
        fence_margin: float | None = None,
        reconcile_interval: float = 30.0,
        units: UnitManager | None = None,
        host_actions: HostActions | None = None,
    ) -> None:
        """``units``: systemd as the agent drives it; by default ``SystemdManager`` on
        ``bus_address`` (the system bus).  ``host_actions``: how a maintenance reboots
        the machine or runs a command on it (by default with systemd's tools)."""
        if machine is None:
            machine = machine_from_config(config, machine_id or host.machine_id())
        self.machine = machine = replace(machine, systemd_connected=False)
        self.config = config
        self.store = store
        self.clock = clock
        self.wall = wall
        self.systemd = SystemdLink(False, "not connected yet", wall())
        self.ttl = config.agent_ttl
        self.shutting_down = asyncio.Event()

        self.publisher = Publisher(
            store=store, machine=machine.id, wall=wall, on_recovered=self._resync_soon
        )
        self.health = HealthMonitor(
            host=host.specifier_facts(machine.id, machine.hostname),
            on_change=self.publisher.health,
            clock=clock,
            wall=wall,
        )
        self.manager: UnitManager = units or SystemdManager(
            bus_address=bus_address, fence_name=fence_name_for(config.units_directory)
        )
        self.manager.subscribe(self._on_status, self._on_shutdown)
        self.presence = Presence(
            store=store,
            machine=machine,
            ttl=self.ttl,
            lease_file=lease_file,
            clock=clock,
            on_lease=self._on_lease,
            on_renewed=self._on_renewed,
        )
        self.schedule = ScheduleView(store, machine.id, on_change=self._changed)
        margin = fence_margin if fence_margin is not None else default_margin(self.ttl)
        self.fence = Fence(
            presence=self.presence, schedule=self.schedule, margin=margin, on_change=self._changed
        )
        self.reconciler = Reconciler(
            manager=self.manager,
            unitdir=UnitDirectory(config.units_directory),
            bodies=Bodies(store),
            schedule=self.schedule,
            publisher=self.publisher,
            fenced=self.fence.is_fenced,
            cover=self._cover,
            interval=reconcile_interval,
        )
        self.fence_timer = FenceTimer(
            manager=self.manager,
            presence=self.presence,
            margin=margin,
            units=self.reconciler.at_most_once_units,
            on_lapsed=self.reconciler.forget_started,
        )
        self.actions = ActionRunner(
            store, machine.id, machine.boot_id, host_actions or SystemdActions(), wall=wall
        )
        self.reboot_flag = RebootFlag(
            store,
            machine.id,
            config.reboot_required_file,
            window=config.maintenance_window,
            wall=wall,
        )
        self.systemd_connected = asyncio.Event()
        self._systemd_tried = asyncio.Event()
        self._resync_wanted = asyncio.Event()
        self._release_task: asyncio.Task[None] | None = None

    # --- callbacks --------------------------------------------------------

    def _changed(self) -> None:
        self.reconciler.trigger()

    def _on_status(self, status: UnitStatus) -> None:
        self.publisher.status(status)
        body = self.reconciler.bodies.get(self.reconciler.files.get(status.name, ""))
        self.health.observe(
            status.name,
            status.active_state in CHECKED_STATES,
            body.health if body is not None else None,
        )

    def _on_lease(self, lease: int) -> None:
        self.publisher.set_lease(lease)

    def _on_renewed(self) -> None:
        self.fence_timer.trigger()

    async def _cover(self, starting: list[str]) -> None:
        await self.fence_timer.cover(starting)

    def _on_shutdown(self) -> None:
        if not self.shutting_down.is_set():
            log.info("shutdown machine=%s reason='systemd is stopping'", self.machine.id)
            self.shutting_down.set()

    def _systemd_link(self, connected: bool, reason: str = "") -> None:
        """Record an attempt's outcome; a change of ``connected`` is published."""
        self._systemd_tried.set()
        changed = connected != self.systemd.connected
        if not changed and reason == self.systemd.reason:
            return
        since = self.wall() if changed else self.systemd.since
        self.systemd = SystemdLink(connected, reason, since)
        if changed:
            self.machine = replace(self.machine, systemd_connected=connected)
            self.presence.update(self.machine)

    def _resync_soon(self) -> None:
        self._resync_wanted.set()

    async def _resyncer(self) -> None:
        """Re-read unit states after a registry outage (signals may have been coalesced)."""
        while True:
            await self._resync_wanted.wait()
            self._resync_wanted.clear()
            with contextlib.suppress(SystemdError):
                await self.manager.resync()

    # --- supervised tasks -------------------------------------------------

    async def run(self) -> None:
        """Run until the machine shuts down; cancel to stop fleetd (units keep running)."""
        self.reconciler.adopt()
        try:
            await self._supervise()
        except asyncio.CancelledError:
            await self._on_cancel()
            raise
        finally:
            await self.manager.close()

    async def _supervise(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._present(), name="presence")
                group.create_task(self.presence.publish(), name="machine")
                group.create_task(self._systemd(), name="systemd")
                group.create_task(self.schedule.run(), name="schedule")
                group.create_task(self.reconciler.run(self._ready), name="reconciler")
                group.create_task(self.publisher.run(), name="publisher")
                group.create_task(self.health.run(), name="health-checks")
                group.create_task(self.fence.run(), name="fence")
                group.create_task(self.fence_timer.run(), name="fence-timer")
                group.create_task(self._resyncer(), name="resync")
                group.create_task(self._watch_shutdown(), name="shutdown")
                group.create_task(self._maintenance(), name="maintenance")
        except* _MachineShutdown:
            pass

    async def _on_cancel(self) -> None:
        """fleetd is being stopped: if the machine is going down, release the lease first."""
        if not self.shutting_down.is_set() and self.manager.connected:
            with contextlib.suppress(SystemdError, TimeoutError):
                async with asyncio.timeout(2):
                    if await self.manager.system_state() == "stopping":
                        self._on_shutdown()
        if self.shutting_down.is_set():
            await asyncio.shield(self._release())

    def _release(self) -> asyncio.Task[None]:
        """Revoke the lease once; shielded callers let a SIGTERM not cut it short."""
        if self._release_task is None:
            self.publisher.stop()
            self._release_task = asyncio.get_running_loop().create_task(self._revoke())
        return self._release_task

    async def _revoke(self) -> None:
        try:
            async with asyncio.timeout(3):
                await self.presence.revoke()
        except (FleetError, TimeoutError) as exc:
            log.warning("could not revoke the lease (%s); it expires by itself", exc)

    async def _present(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_CONTACT):
                await self._systemd_tried.wait()
        await self.presence.run()

    async def _ready(self) -> None:
        await self.presence.registered.wait()
        await self.schedule.ready.wait()
        await self.systemd_connected.wait()
        # act on a schedule read after registering (see fencing)
        await retrying(self.schedule.refresh, Backoff("reading the schedule", log), RegistryError)

    async def _systemd(self) -> None:
        """Keep a D-Bus connection: connect with backoff, resync, wait for a disconnect."""
        backoff = Backoff("systemd", log)
        while True:
            try:
                await self.manager.connect()
                await self.manager.track(self.reconciler.files)
                if await self.manager.system_state() == "stopping":
                    self._on_shutdown()
            except SystemdError as exc:
                self._systemd_link(False, str(exc))
                await backoff.failed(exc)
                continue
            backoff.succeeded()
            log.info("connected to systemd")
            self._systemd_link(True)
            self.systemd_connected.set()
            self.reconciler.trigger()
            await self.manager.wait_disconnected()
            self.systemd_connected.clear()
            self._systemd_link(False, "lost the connection to the system bus")
            log.warning("lost the connection to systemd; reconnecting")

    async def _maintenance(self) -> None:
        """Actions and reboot requests once registered (the leader knows the machine)."""
        await self.presence.registered.wait()
        async with asyncio.TaskGroup() as group:
            group.create_task(self.actions.run(), name="maintenance-actions")
            group.create_task(self.reboot_flag.run(), name="reboot-flag")

    async def _watch_shutdown(self) -> None:
        await self.shutting_down.wait()
        await asyncio.shield(self._release())
        raise _MachineShutdown
