"""systemd's D-Bus API (org.freedesktop.systemd1) over dbus-fast, without introspection.

``SystemdManager`` is the real ``UnitManager`` (units.py): it owns one
connection to the system bus, subscribes to systemd's signals (``JobRemoved``,
``JobNew``, ``PropertiesChanged`` of unit objects) and keeps the
load/active/sub state of the units it was asked to track, reporting every
change through ``on_change``; ``resync`` reads them all at once with
``ListUnitsByNames``.  Nothing is polled per unit.

Jobs: ``StartUnit``/``StopUnit`` return a job path and the result arrives as a
``JobRemoved`` signal, which can be processed before the method reply
resumes the caller.  Every ``JobRemoved`` is therefore recorded (bounded) and
a caller first looks up the result of its job there before waiting.

Fencing (``arm_fence``): a transient timer and service pair, fenceunit.py.

Every D-Bus error becomes a ``SystemdError`` carrying the D-Bus error name; a
lost connection becomes ``SystemdUnavailable``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from fleetd.agent import fenceunit
from fleetd.agent.units import NO_SUCH_UNIT, UnitStatus, UnitTracker
from fleetd.errors import SystemdError, SystemdUnavailable

log = logging.getLogger(__name__)

DEST = "org.freedesktop.systemd1"
PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT = "org.freedesktop.systemd1.Unit"
PROPERTIES = "org.freedesktop.DBus.Properties"
UNIT_PATH_PREFIX = "/org/freedesktop/systemd1/unit/"
SHUTDOWN_TARGETS = frozenset(
    {"shutdown.target", "poweroff.target", "reboot.target", "halt.target", "kexec.target"}
)
RUNTIME_UNIT_DIR = Path("/run/systemd/system")
_MATCHES = (
    f"type='signal',sender='{DEST}',interface='{MANAGER}',member='JobRemoved'",
    f"type='signal',sender='{DEST}',interface='{PROPERTIES}',member='PropertiesChanged',"
    f"arg0='{UNIT}'",
    # JobNew only for the shutdown targets: the bus drops the rest for us
    *(
        f"type='signal',sender='{DEST}',interface='{MANAGER}',member='JobNew',arg2='{target}'"
        for target in sorted(SHUTDOWN_TARGETS)
    ),
)
_JOB_MEMORY = 65536
# dbus-daemon allows 128 pending replies per connection (max_replies_per_connection).
_MAX_PENDING_CALLS = 64
_ESCAPED = re.compile(r"_([0-9a-f]{2})")


def unit_path_label(name: str) -> str:
    """systemd's object-path escaping of a unit name (``a.service`` -> ``a_2eservice``)."""
    return "".join(c if c.isascii() and c.isalnum() else f"_{ord(c):02x}" for c in name) or "_"


def unit_name_from_path(path: str) -> str:
    """The inverse of ``unit_path_label`` for a unit object path."""
    label = path[len(UNIT_PATH_PREFIX) :]
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), label)


class SystemdManager(UnitTracker):
    """One D-Bus connection to systemd; ``connect()`` before use, again after a disconnect.

    ``runtime_dir`` is where ``LinkUnitFiles(runtime)`` puts its links, as this
    process sees it; ``fence_name`` names this agent's fence units (fenceunit.py)."""

    def __init__(
        self,
        *,
        on_change: Callable[[UnitStatus], None] = lambda status: None,
        on_shutdown: Callable[[], None] = lambda: None,
        bus_address: str | None = None,
        job_timeout: float = 90.0,
        runtime_dir: Path = RUNTIME_UNIT_DIR,
        fence_name: str = "fleetd-fence",
    ) -> None:
        super().__init__(on_change, on_shutdown)
        self._bus_address = bus_address
        self._job_timeout = job_timeout
        self.runtime_dir = runtime_dir
        self.fence_name = fence_name
        self._bus: MessageBus | None = None
        self._jobs_done: OrderedDict[str, str] = OrderedDict()
        self._job_waiters: dict[str, asyncio.Future[str]] = {}
        self._calls = asyncio.Semaphore(_MAX_PENDING_CALLS)

    # --- connection -------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._bus is not None and self._bus.connected

    async def connect(self) -> None:
        """Connect to the system bus, add the signal matches and ``Subscribe``."""
        await self.close()
        try:
            bus = MessageBus(bus_address=self._bus_address, bus_type=BusType.SYSTEM)
            await bus.connect()
        except Exception as exc:
            raise SystemdUnavailable(f"cannot connect to the system bus: {exc}") from exc
        bus.add_message_handler(self._on_message)
        self._bus = bus
        for rule in _MATCHES:
            await self._call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "AddMatch",
                "s",
                [rule],
            )
        await self._manager("Subscribe")

    async def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.disconnect()
            try:
                await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
            except Exception as exc:  # the connection was already broken
                log.debug("system bus closed with %s", exc)
        self._fail_waiters()

    async def wait_disconnected(self) -> None:
        """Return when the bus connection is lost (pending jobs then fail as unavailable)."""
        bus = self._bus
        if bus is None:
            return
        try:
            await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
        except Exception as exc:
            log.warning("system bus connection lost: %s", exc)
        if self._bus is bus:
            self._bus = None
        self._fail_waiters()

    def _fail_waiters(self) -> None:
        waiters, self._job_waiters = self._job_waiters, {}
        for fut in waiters.values():
            if not fut.done():
                fut.set_exception(SystemdUnavailable("system bus connection lost"))

    # --- calls ------------------------------------------------------------

    async def _call(
        self, dest: str, path: str, iface: str, member: str, sig: str = "", body: Sequence[Any] = ()
    ) -> list[Any]:
        bus = self._bus
        if bus is None or not bus.connected:
            raise SystemdUnavailable(f"{member}: not connected to the system bus")
        msg = Message(
            destination=dest, path=path, interface=iface, member=member,
            signature=sig, body=list(body),
        )  # fmt: skip
        try:
            async with self._calls:
                reply = await bus.call(msg)
        except Exception as exc:
            raise SystemdUnavailable(f"{member}: system bus connection lost: {exc}") from exc
        if reply is None:
            raise SystemdUnavailable(f"{member}: system bus connection lost")
        if reply.message_type is MessageType.ERROR:
            text = reply.body[0] if reply.body else ""
            raise SystemdError(f"{member} failed: {text}", name=reply.error_name or "")
        return list(reply.body)

    async def _manager(self, member: str, sig: str = "", *body: Any) -> list[Any]:
        return await self._call(DEST, PATH, MANAGER, member, sig, body)

    async def link(self, paths: Sequence[str]) -> None:
        """``LinkUnitFiles(runtime, force)``: make files outside the search path known."""
        if paths:
            await self._manager("LinkUnitFiles", "asbb", list(paths), True, True)

    def unlink(self, path: str) -> None:
        """Remove the runtime link ``link`` made for ``path``, if it still points there."""
        link = self.runtime_dir / Path(path).name
        if link.is_symlink() and Path(os.readlink(link)) == Path(path):
            link.unlink()

    async def enable(self, names_or_paths: Sequence[str]) -> None:
        """``EnableUnitFiles(runtime, force)`` for units whose file has an ``[Install]`` section."""
        if names_or_paths:
            await self._manager("EnableUnitFiles", "asbb", list(names_or_paths), True, True)

    async def disable(self, names: Sequence[str]) -> None:
        if names:
            await self._manager("DisableUnitFiles", "asb", list(names), True)

    async def reload(self) -> None:
        """``Reload``: systemd re-reads every unit file (daemon-reload)."""
        await self._manager("Reload")

    async def reset_failed(self, name: str) -> None:
        try:
            await self._manager("ResetFailedUnit", "s", name)
        except SystemdError as exc:
            if exc.name != NO_SUCH_UNIT:
                raise

    async def start(self, name: str) -> str:
        """``StartUnit(replace)`` and wait for the job; returns its result (``done``, ``failed``…).

        ``timeout`` is returned when the job is still running after ``job_timeout``.
        """
        return await self._job("StartUnit", name)

    async def stop(self, name: str) -> str:
        """``StopUnit(replace)`` and wait for the job; a unit systemd does not know is ``done``."""
        try:
            return await self._job("StopUnit", name)
        except SystemdError as exc:
            if exc.name == NO_SUCH_UNIT:
                return "done"
            raise

    async def _job(self, member: str, name: str) -> str:
        return await self._wait_job(member, "ss", name, "replace")

    async def _wait_job(self, member: str, sig: str, *body: Any) -> str:
        (job,) = await self._manager(member, sig, *body)
        result = self._jobs_done.pop(job, None)
        if result is not None:
            return result
        fut = asyncio.get_running_loop().create_future()
        self._job_waiters[job] = fut
        try:
            return await asyncio.wait_for(fut, self._job_timeout)
        except TimeoutError:
            return "timeout"
        finally:
            self._job_waiters.pop(job, None)

    async def arm_fence(self, names: Sequence[str], within: float) -> None:
        """Start a new fence timer, then stop the older ones (fenceunit.py)."""
        for attempt in range(3):
            timer = fenceunit.new_timer_name(self.fence_name)
            args = fenceunit.transient_fence(timer, names, within)
            try:
                result = await self._wait_job("StartTransientUnit", "ssa(sv)a(sa(sv))", *args)
            except SystemdError as exc:
                if exc.name == fenceunit.UNIT_EXISTS and attempt < 2:
                    continue  # the token was taken: draw another
                raise
            if result != "done":
                raise SystemdError(f"starting fence {timer} ended with job result {result!r}")
            break
        await self._stop_fences(keep=timer)

    async def disarm_fence(self) -> None:
        await self._stop_fences(keep="")

    async def _stop_fences(self, keep: str) -> None:
        pattern = fenceunit.fence_pattern(self.fence_name)
        (rows,) = await self._manager("ListUnitsByPatterns", "asas", [], [pattern])
        for row in rows:
            if row[0] != keep and row[3] != "inactive":
                result = await self.stop(row[0])
                if result != "done":
                    raise SystemdError(f"stopping fence {row[0]} ended with job result {result!r}")

    async def list_units(self, names: Iterable[str]) -> dict[str, UnitStatus]:
        """``ListUnitsByNames``: the current status of ``names`` (unknown units: not-found)."""
        wanted = list(names)
        if not wanted:
            return {}
        (rows,) = await self._manager("ListUnitsByNames", "as", wanted)
        return {row[0]: UnitStatus(row[0], row[2], row[3], row[4]) for row in rows}

    async def system_state(self) -> str:
        """The manager's ``SystemState`` (``running``, ``degraded``, ``stopping``…)."""
        (value,) = await self._call(DEST, PATH, PROPERTIES, "Get", "ss", [MANAGER, "SystemState"])
        return str(value.value if isinstance(value, Variant) else value)

    def _on_message(self, msg: Message) -> bool:
        if msg.message_type is not MessageType.SIGNAL:
            return False
        member = msg.member
        if member == "JobRemoved" and msg.interface == MANAGER:
            _id, job, _unit, result = msg.body
            fut = self._job_waiters.pop(job, None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(result)
            else:
                self._jobs_done[job] = result
                if len(self._jobs_done) > _JOB_MEMORY:
                    self._jobs_done.popitem(last=False)
        elif member == "PropertiesChanged" and (msg.path or "").startswith(UNIT_PATH_PREFIX):
            iface, changed, _invalidated = msg.body
            if iface != UNIT:
                return False
            name = unit_name_from_path(msg.path or "")
            old = self.status.get(name)
            if name not in self._tracked or old is None:
                return False
            fields = {}
            for prop, attr in (
                ("LoadState", "load_state"),
                ("ActiveState", "active_state"),
                ("SubState", "sub_state"),
            ):
                if prop in changed:
                    fields[attr] = str(changed[prop].value)
            if fields:
                self._update(replace(old, **fields))
        elif member == "JobNew" and msg.interface == MANAGER and msg.body[2] in SHUTDOWN_TARGETS:
            self._on_shutdown()
        return False
