"""An in-memory systemd for fast tests; ``fakebus.FakeConnection`` is a ``UnitManager``
connected to it, held to the same contract suite as ``SystemdManager`` on real systemd.

Files: the unit search path is ``<root>/run/systemd/system`` (where ``link``
and ``enable`` put their symlinks, as ``LinkUnitFiles(runtime)`` does) and
``<root>/etc/systemd/system``; an instance falls back to its template's file;
a file linked to /dev/null is masked.  Units are read when first referenced
(start, stop, list) and kept as read until a reload, except that a unit
found missing is looked up again on its next reference (as systemd >= 246).

What a started unit does follows from its file (unitspec.py): a service whose
``ExecStart`` runs ``true`` exits at once, ``false`` fails at once, anything
else runs until stopped; ``Type=oneshot`` makes the start job wait for that
exit, so a oneshot that runs on keeps its job running until it is stopped or
``kill``-ed.  Timers, sockets and paths wait; other kinds are just active.
Every state change is sent to the connected managers like a D-Bus signal.

Fences (``arm_fence``) are kept by name, each a deadline on ``clock`` (the
machine's monotonic clock; a test's ``ManualClock`` makes them fire when it
advances) and looked at every ``FENCE_POLL`` seconds while one is armed; when
one fires its units are stopped as ``systemctl stop`` would, and it is
recorded in ``fired``.  They outlive every connection, not a power-off.

What else can happen on a machine comes from the test: a failing next start,
a main process that dies, a ``systemctl`` by someone else, an injected D-Bus
error, the bus going away, a shutdown.  ``calls`` records the D-Bus method
calls of every connection, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fleetd.agent.units import BAD_UNIT_SETTING, NO_SUCH_UNIT, UNIT_MASKED, UnitStatus
from fleetd.agent.unitspec import UnitSpec, read_unit, started_state
from fleetd.errors import SystemdError
from fleetd.unitname import UnitName

_LOAD_ERRORS = {
    "not-found": (NO_SUCH_UNIT, "Unit {} not found."),
    "bad-setting": (BAD_UNIT_SETTING, "Unit {} has a bad unit file setting."),
    "masked": (UNIT_MASKED, "Unit {} is masked."),
}
_RUNNING = ("active", "activating", "reloading")
FENCE_POLL = 0.02


class Listener(Protocol):
    """A connected manager, as systemd's signals reach it."""

    def signal(self, status: UnitStatus) -> None: ...

    def lost(self) -> None: ...

    def shutdown_signal(self) -> None: ...


def _no_file(member: str, name: str) -> SystemdError:
    return SystemdError(f"{member} failed: Unit file {name} does not exist.", NO_SUCH_UNIT)


@dataclass(slots=True)
class FakeUnit:
    """A unit systemd holds in memory; ``spec`` None: its file was not found."""

    name: str
    spec: UnitSpec | None
    active_state: str = "inactive"
    sub_state: str = "dead"
    main_pid: int = 0
    job: asyncio.Future[str] | None = None  # a start job still running
    journal: list[str] = field(default_factory=list)

    @property
    def load_state(self) -> str:
        return "not-found" if self.spec is None else self.spec.load_state

    @property
    def description(self) -> str:
        return self.name if self.spec is None else self.spec.description

    def to_status(self) -> UnitStatus:
        return UnitStatus(self.name, self.load_state, self.active_state, self.sub_state)


class FakeSystemd:
    """One machine's systemd, in memory; its files under ``root``."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.clock = clock
        self.fences: dict[str, tuple[tuple[str, ...], float]] = {}  # name -> (units, deadline)
        self.fired: list[tuple[str, tuple[str, ...]]] = []
        self.fence_looks = 0  # times the fence timer looked at the clock
        self._fence_task: asyncio.Task[None] | None = None
        self.runtime_dir = root / "run/systemd/system"
        self.search_path = (self.runtime_dir, root / "etc/systemd/system")
        self.units: dict[str, FakeUnit] = {}
        self.calls: list[tuple[str, str]] = []  # (D-Bus method, first argument)
        self.bus_up = True
        self.stopping = False
        self.connections: set[Listener] = set()
        self._faults: list[tuple[str, str, SystemdError]] = []
        self._next_start: dict[str, str] = {}
        self._pids = itertools.count(1000)

    def call(self, member: str, arg: str = "") -> None:
        """Record one D-Bus method call; raise the error injected for it, if any."""
        self.calls.append((member, arg))
        for i, (m, unit, error) in enumerate(self._faults):
            if m == member and unit in ("", arg):
                del self._faults[i]
                raise error

    # --- files ------------------------------------------------------------

    def _read(self, name: str) -> UnitSpec | None:
        """The unit as systemd would load it now (from the template's file for an instance)."""
        template = UnitName.parse(name).template
        for candidate in (name,) if template is None else (name, template):
            for directory in self.search_path:
                path = directory / candidate
                try:
                    if path.resolve() == Path(os.devnull):
                        return read_unit(name, "", masked=True)
                    return read_unit(name, path.read_text(encoding="utf-8", errors="replace"))
                except OSError:
                    continue
        return None

    def unit_for(self, name: str) -> FakeUnit:
        """The unit as systemd holds it, read now if it is new or was missing."""
        unit = self.units.get(name)
        if unit is None:
            unit = FakeUnit(name, self._read(name))
            if unit.spec is not None:
                self.units[name] = unit
        elif unit.spec is None:
            unit.spec = self._read(name)
        return unit

    def link(self, paths: Sequence[str]) -> None:
        for path in paths:
            if not os.path.isabs(path) or not os.path.isfile(path):
                raise _no_file("LinkUnitFiles", path)
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        for path in paths:
            self._symlink(self.runtime_dir / Path(path).name, Path(path))

    def unlink(self, path: str) -> None:
        link = self.runtime_dir / Path(path).name
        if link.is_symlink() and Path(os.readlink(link)) == Path(path):
            link.unlink()

    def enable(self, names_or_paths: Sequence[str]) -> None:
        for item in names_or_paths:
            name = Path(item).name
            spec = self._read(name)
            if spec is None:
                raise _no_file("EnableUnitFiles", name)
            for target, kind in spec.install:
                wants = self.runtime_dir / f"{target}.{kind}"
                wants.mkdir(parents=True, exist_ok=True)
                self._symlink(wants / name, self.runtime_dir / name)

    def disable(self, names: Sequence[str]) -> None:
        for name in names:
            if self._read(name) is None:
                raise _no_file("DisableUnitFiles", name)
        for name in names:
            for link in self.runtime_dir.glob(f"*/{name}"):
                if link.is_symlink() and link.parent.suffix in (".wants", ".requires"):
                    link.unlink()

    @staticmethod
    def _symlink(link: Path, target: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(target)

    def reload(self) -> None:
        for unit in list(self.units.values()):
            before = unit.load_state
            unit.spec = self._read(unit.name)
            if unit.spec is None and unit.active_state == "inactive":
                del self.units[unit.name]  # garbage-collected, as systemd does
            if unit.load_state != before:
                self._emit(unit)

    # --- jobs -------------------------------------------------------------

    def start(self, name: str) -> str | asyncio.Future[str]:
        """Start ``name``: the job's result, or the job itself while it runs."""
        unit = self.unit_for(name)
        if unit.load_state in _LOAD_ERRORS:
            error, text = _LOAD_ERRORS[unit.load_state]
            raise SystemdError(f"StartUnit failed: {text.format(name)}", error)
        if unit.job is not None:
            return unit.job
        if unit.active_state in _RUNNING:
            return "done"
        assert unit.spec is not None
        spec = unit.spec
        unit.journal.append(f"Starting {spec.description}...")
        failing = self._next_start.pop(name, None)
        if failing is not None:
            self._exit(unit, 1)
            return failing
        active, sub, code = started_state(spec)
        if spec.oneshot:
            self._set(unit, "activating", "start", pid=next(self._pids))
            if code is None:
                unit.job = asyncio.get_running_loop().create_future()
                return unit.job
            self._exit(unit, code)
            return "done" if code == 0 else "failed"
        self._set(unit, active, sub, pid=next(self._pids) if spec.kind == "service" else 0)
        unit.journal.append(f"Started {spec.description}.")
        if code is not None:
            self._exit(unit, code)
        return "done"

    def stop(self, name: str) -> str:
        unit = self.unit_for(name)
        if unit.job is not None:  # a oneshot stopped before its program exited failed
            job, unit.job = unit.job, None
            job.set_result("canceled")
            unit.journal.append(f"Stopping {unit.description}...")
            self._set(unit, "failed", "failed")
            unit.journal.append(f"{unit.name}: Failed with result 'signal'.")
        elif unit.active_state in _RUNNING:
            unit.journal.append(f"Stopping {unit.description}...")
            self._set(unit, "inactive", "dead")
            unit.journal.append(f"Stopped {unit.description}.")
        if unit.spec is None and unit.active_state == "inactive":
            self.units.pop(name, None)
        return "done"

    def reset_failed(self, name: str) -> None:
        unit = self.units.get(name)
        if unit is not None and unit.active_state == "failed":
            self._set(unit, "inactive", "dead")

    def _exit(self, unit: FakeUnit, code: int) -> None:
        """The unit's main process exited with ``code``."""
        spec = unit.spec
        assert spec is not None
        if code == 0:
            remain = spec.oneshot and spec.remain_after_exit
            self._set(unit, *(("active", "exited") if remain else ("inactive", "dead")))
            if spec.oneshot:
                unit.journal.append(f"Finished {spec.description}.")
        else:
            unit.journal.append(f"{unit.name}: Main process exited, status={code}/FAILURE")
            self._set(unit, "failed", "failed")
            unit.journal.append(f"{unit.name}: Failed with result 'exit-code'.")

    def _set(self, unit: FakeUnit, active: str, sub: str, pid: int = 0) -> None:
        unit.active_state, unit.sub_state = active, sub
        unit.main_pid = pid if active in ("active", "activating") else 0
        self._emit(unit)

    def _emit(self, unit: FakeUnit) -> None:
        status = unit.to_status()
        for connection in list(self.connections):
            connection.signal(status)

    def status(self, name: str) -> UnitStatus:
        return self.unit_for(name).to_status()

    def system_state(self) -> str:
        if self.stopping:
            return "stopping"
        failed = any(u.active_state == "failed" for u in self.units.values())
        return "degraded" if failed else "running"

    # --- fences -------------------------------------------------------------

    def arm_fence(self, fence: str, names: Sequence[str], within: float) -> None:
        self.fences[fence] = (tuple(names), self.clock() + within)
        if self._fence_task is None or self._fence_task.done():
            self._fence_task = asyncio.get_running_loop().create_task(self._fence_timer())

    def disarm_fence(self, fence: str) -> None:
        self.fences.pop(fence, None)

    async def _fence_timer(self) -> None:
        while self.fences:
            self.fence_looks += 1
            now = self.clock()
            for fence, (names, deadline) in list(self.fences.items()):
                if now >= deadline:
                    del self.fences[fence]
                    self.fired.append((fence, names))
                    for name in names:
                        self.stop(name)
            soonest = min((d for _, d in self.fences.values()), default=now)
            await asyncio.sleep(min(FENCE_POLL, max(0.0, soonest - now)))

    # --- the machine's side -------------------------------------------------

    def unit(self, name: str) -> FakeUnit | None:
        """The unit as systemd holds it now (None if it is not loaded)."""
        return self.units.get(name)

    def fail(self, member: str, error: str, message: str = "", *, unit: str = "") -> None:
        """The next call of D-Bus method ``member`` (for ``unit``, if given) fails."""
        text = message or f"{member} failed (injected)"
        self._faults.append((member, unit, SystemdError(text, name=error)))

    def fail_next_start(self, name: str, result: str = "failed") -> None:
        """The next start of ``name`` fails at once with job result ``result``."""
        self._next_start[name] = result

    def kill(self, name: str, code: int = 1) -> None:
        """The main process of ``name`` exits with ``code`` (ending a oneshot's job)."""
        unit = self.units[name]
        if unit.job is not None:
            job, unit.job = unit.job, None
            job.set_result("done" if code == 0 else "failed")
        self._exit(unit, code)

    def systemctl(self, verb: str, name: str) -> None:
        """``systemctl start|stop|reset-failed NAME`` run by someone else on the machine."""
        if verb == "start":
            self.start(name)
        elif verb == "stop":
            self.stop(name)
        elif verb == "reset-failed":
            self.reset_failed(name)
        else:
            raise ValueError(f"systemctl {verb}: not supported by the fake")

    def set_bus(self, up: bool) -> None:
        """The system bus goes away (connections drop, new ones are refused) or comes back."""
        self.bus_up = up
        if not up:
            for connection in list(self.connections):
                connection.lost()

    def power_off(self) -> None:
        """The machine stops: every process ends, connections drop, ``<root>/run`` is
        emptied (a tmpfs).  ``boot()`` brings the bus back."""
        self.set_bus(False)
        self.fences.clear()
        if self._fence_task is not None:
            self._fence_task.cancel()
        for unit in self.units.values():
            if unit.job is not None:
                unit.job.cancel()
        self.units.clear()
        self.stopping = False
        shutil.rmtree(self.root / "run", ignore_errors=True)

    def boot(self) -> None:
        self.bus_up = True

    def shutdown(self) -> None:
        """The machine begins to shut down (a job for poweroff.target appears)."""
        self.stopping = True
        for connection in list(self.connections):
            connection.shutdown_signal()
