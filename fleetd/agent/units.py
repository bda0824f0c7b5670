"""The agent's view of systemd: the ``UnitManager`` protocol and the status it reports.

Two implementations: ``systemd.SystemdManager`` (systemd's D-Bus API) and
``fakesystemd.FakeSystemd`` (in memory, for fast tests).  Both are held to one
contract suite (tests/component/test_unit_manager_contract.py), run against the
fake and against real systemd in a sandbox machine.

The contract, as the agent relies on it:

- ``connect()`` before anything else; every call made while not connected
  raises ``SystemdUnavailable``; ``wait_disconnected()`` returns when the
  connection is lost (jobs in flight then fail with ``SystemdUnavailable``).
- ``link(paths)`` makes unit files outside the search path loadable under their
  file names; ``unlink(path)`` removes such a link again (if it still points at
  ``path``); ``enable``/``disable`` add and remove the ``[Install]`` symlinks
  (runtime only); ``reload()`` makes systemd re-read every unit file.  A unit
  file linked for a name systemd had found missing is seen without a reload.
- ``start(name)``/``stop(name)`` run a job and return its result: ``done``,
  ``failed``, ``canceled``... or ``timeout`` if the job is still running after
  the manager's job timeout.  Starting a unit whose file is missing raises
  ``SystemdError`` named ``NO_SUCH_UNIT`` (``BAD_UNIT_SETTING`` for a file
  systemd refused); stopping a unit that is not running, or that systemd does
  not know, is ``done``.
- ``track(names)`` reads their status now and from then on reports every change
  of a tracked unit's load/active/sub state to the ``on_change`` callback given
  to ``subscribe``; ``status`` holds the last status of each tracked unit;
  ``untrack`` forgets them; ``resync`` re-reads them all at once.
- ``on_shutdown`` is called when the machine starts shutting down (a job for a
  shutdown target appeared); ``system_state()`` is ``stopping`` then.
- ``arm_fence(names, within)`` makes systemd itself stop ``names`` ``within``
  seconds from now (measured by systemd's clock), whatever becomes of this
  process: the fence outlives the connection and the process.  Each call
  replaces the fence armed before (by this manager or by an earlier process
  with the same ``fence_name``), so re-arming pushes the deadline back;
  ``disarm_fence()`` removes it.  Both return once systemd holds the new state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
BAD_UNIT_SETTING = "org.freedesktop.systemd1.BadUnitSetting"
UNIT_MASKED = "org.freedesktop.systemd1.UnitMasked"
LOAD_FAILED = "org.freedesktop.systemd1.LoadFailed"


@dataclass(frozen=True, slots=True)
class UnitStatus:
    """A unit's state as ``ListUnitsByNames`` and the unit's properties report it."""

    name: str
    load_state: str
    active_state: str
    sub_state: str


def not_found(name: str) -> UnitStatus:
    """What systemd reports for a unit it has no file for."""
    return UnitStatus(name, "not-found", "inactive", "dead")


class UnitManager(Protocol):
    """What the agent needs of systemd (see the module docstring for the contract)."""

    @property
    def connected(self) -> bool: ...

    @property
    def status(self) -> Mapping[str, UnitStatus]:
        """The last known status of every tracked unit."""
        ...

    def subscribe(
        self, on_change: Callable[[UnitStatus], None], on_shutdown: Callable[[], None]
    ) -> None:
        """Report status changes of tracked units and the machine's shutdown to these."""
        ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def wait_disconnected(self) -> None: ...

    async def link(self, paths: Sequence[str]) -> None: ...

    def unlink(self, path: str) -> None: ...

    async def enable(self, names_or_paths: Sequence[str]) -> None: ...

    async def disable(self, names: Sequence[str]) -> None: ...

    async def reload(self) -> None: ...

    async def reset_failed(self, name: str) -> None: ...

    async def start(self, name: str) -> str: ...

    async def stop(self, name: str) -> str: ...

    async def list_units(self, names: Iterable[str]) -> dict[str, UnitStatus]: ...

    async def system_state(self) -> str: ...

    async def track(self, names: Iterable[str]) -> None: ...

    def untrack(self, names: Iterable[str]) -> None: ...

    async def resync(self, names: Iterable[str] | None = None) -> None: ...

    async def arm_fence(self, names: Sequence[str], within: float) -> None:
        """systemd stops ``names`` ``within`` seconds from now unless re-armed or disarmed."""
        ...

    async def disarm_fence(self) -> None: ...


class UnitTracker:
    """The bookkeeping every ``UnitManager`` shares: tracked units, their last status, and
    the callbacks; subclasses read statuses from systemd with ``list_units``."""

    def __init__(
        self,
        on_change: Callable[[UnitStatus], None] = lambda status: None,
        on_shutdown: Callable[[], None] = lambda: None,
    ) -> None:
        self._on_change = on_change
        self._on_shutdown = on_shutdown
        self.status: dict[str, UnitStatus] = {}
        self._tracked: set[str] = set()

    def subscribe(
        self, on_change: Callable[[UnitStatus], None], on_shutdown: Callable[[], None]
    ) -> None:
        self._on_change = on_change
        self._on_shutdown = on_shutdown

    async def list_units(self, names: Iterable[str]) -> dict[str, UnitStatus]:
        raise NotImplementedError

    async def track(self, names: Iterable[str]) -> None:
        """Track ``names`` from now on and read their status now (reported if changed)."""
        wanted = set(names)
        self._tracked |= wanted
        if wanted:
            await self.resync(wanted)

    def untrack(self, names: Iterable[str]) -> None:
        for name in names:
            self._tracked.discard(name)
            self.status.pop(name, None)

    async def resync(self, names: Iterable[str] | None = None) -> None:
        """Re-read the status of tracked units with one ``list_units``."""
        wanted = sorted(self._tracked if names is None else set(names) & self._tracked)
        for status in (await self.list_units(wanted)).values():
            self._update(status)

    def _update(self, status: UnitStatus) -> None:
        if status.name not in self._tracked or self.status.get(status.name) == status:
            return
        self.status[status.name] = status
        self._on_change(status)
