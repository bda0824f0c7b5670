"""A connection to ``FakeSystemd``: the ``UnitManager`` the agent uses in fast tests.

It behaves like ``SystemdManager`` over a D-Bus connection: every call while
disconnected raises ``SystemdUnavailable``; a job still running after
``job_timeout`` is ``timeout``; jobs in flight fail with ``SystemdUnavailable``
when the bus goes away; status changes of tracked units arrive on the next
turn of the event loop, in order, like signals (never inside the call that
caused them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from fleetd.agent.fakesystemd import FakeSystemd
from fleetd.agent.fenceunit import transient_fence
from fleetd.agent.units import NO_SUCH_UNIT, UnitStatus, UnitTracker
from fleetd.errors import SystemdError, SystemdUnavailable


class FakeConnection(UnitTracker):
    def __init__(
        self, systemd: FakeSystemd, *, job_timeout: float = 90.0, fence_name: str = "fleetd-fence"
    ) -> None:
        super().__init__()
        self.systemd = systemd
        self.fence_name = fence_name
        self.job_timeout = job_timeout
        self._connected = False
        self._lost = asyncio.Event()
        self._epoch = 0  # signals sent to an earlier connection are dropped
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: set[asyncio.Future[str]] = set()

    # --- connection -------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        await self.close()
        if not self.systemd.bus_up:
            raise SystemdUnavailable("cannot connect to the system bus: connection refused")
        self._loop = asyncio.get_running_loop()
        self._lost = asyncio.Event()
        self._epoch += 1
        self._connected = True
        self.systemd.connections.add(self)

    async def close(self) -> None:
        self.lost()

    def lost(self) -> None:
        """The connection is gone: waiters learn it, jobs in flight fail as unavailable."""
        self.systemd.connections.discard(self)
        if self._connected:
            self._connected = False
            self._lost.set()
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(SystemdUnavailable("system bus connection lost"))

    async def wait_disconnected(self) -> None:
        if self._connected:
            await self._lost.wait()

    def _call(self, member: str, arg: str = "") -> None:
        if not self._connected:
            raise SystemdUnavailable(f"{member}: not connected to the system bus")
        self.systemd.call(member, arg)

    # --- signals ----------------------------------------------------------

    def signal(self, status: UnitStatus) -> None:
        if self._connected and self._loop is not None:
            self._loop.call_soon(self._deliver, status, self._epoch)

    def _deliver(self, status: UnitStatus, epoch: int) -> None:
        # like PropertiesChanged: only for tracked units whose status was read once
        if self._connected and epoch == self._epoch and status.name in self.status:
            self._update(status)

    def shutdown_signal(self) -> None:
        if self._connected and self._loop is not None:
            self._loop.call_soon(self._on_shutdown)

    # --- methods ----------------------------------------------------------

    async def link(self, paths: Sequence[str]) -> None:
        if paths:
            self._call("LinkUnitFiles", paths[0])
            self.systemd.link(paths)

    def unlink(self, path: str) -> None:
        self.systemd.unlink(path)

    async def enable(self, names_or_paths: Sequence[str]) -> None:
        if names_or_paths:
            self._call("EnableUnitFiles", names_or_paths[0])
            self.systemd.enable(names_or_paths)

    async def disable(self, names: Sequence[str]) -> None:
        if names:
            self._call("DisableUnitFiles", names[0])
            self.systemd.disable(names)

    async def reload(self) -> None:
        self._call("Reload")
        self.systemd.reload()

    async def reset_failed(self, name: str) -> None:
        try:
            self._call("ResetFailedUnit", name)
        except SystemdError as exc:
            if exc.name != NO_SUCH_UNIT:
                raise
        self.systemd.reset_failed(name)

    async def start(self, name: str) -> str:
        self._call("StartUnit", name)
        job = self.systemd.start(name)
        return job if isinstance(job, str) else await self._wait(job)

    async def _wait(self, job: asyncio.Future[str]) -> str:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)

        def settle(done: asyncio.Future[str]) -> None:
            if not waiter.done():
                waiter.set_result("canceled" if done.cancelled() else done.result())

        job.add_done_callback(settle)
        try:
            return await asyncio.wait_for(waiter, self.job_timeout)
        except TimeoutError:
            return "timeout"
        finally:
            self._waiters.discard(waiter)
            job.remove_done_callback(settle)

    async def stop(self, name: str) -> str:
        try:
            self._call("StopUnit", name)
        except SystemdError as exc:
            if exc.name == NO_SUCH_UNIT:
                return "done"
            raise
        return self.systemd.stop(name)

    async def list_units(self, names: Iterable[str]) -> dict[str, UnitStatus]:
        wanted = list(names)
        if not wanted:
            return {}
        self._call("ListUnitsByNames", wanted[0])
        return {name: self.systemd.status(name) for name in wanted}

    async def system_state(self) -> str:
        self._call("Get", "SystemState")
        return self.systemd.system_state()

    async def arm_fence(self, names: Sequence[str], within: float) -> None:
        transient_fence(f"{self.fence_name}.timer", names, within)  # the same checks
        self._call("StartTransientUnit", self.fence_name)
        self.systemd.arm_fence(self.fence_name, names, within)

    async def disarm_fence(self) -> None:
        self._call("ListUnitsByPatterns", self.fence_name)
        self.systemd.disarm_fence(self.fence_name)
