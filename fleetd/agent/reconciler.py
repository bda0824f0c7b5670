"""The apply loop: schedule + what is on this machine -> ``plan()`` -> systemd.

A pass runs after a change (schedule watch, fencing, reconnect), once no
further change came for ``debounce`` seconds (at most ``max_delay`` after the
first), and at least every ``interval`` seconds.  Tasks run
phase by phase in plan order (stop, unload, load, reload, start); the tasks of
one phase touch different units and run concurrently; a failed phase ends the
pass and the next pass retries.  A unit whose own start fails (its job result
is not ``done``, or systemd refuses it) is not an agent failure: it stays
launched, its state shows why, and it is not restarted in a loop.

Adoption: at start the files already in ``units_directory`` are the current
state, so units loaded or running with the scheduled hash get no task at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fleetd.agent.desired import Bodies, ScheduleView
from fleetd.agent.plan import CurrentUnit, DesiredUnit, Task, TaskKind, phases, plan
from fleetd.agent.publisher import Publisher
from fleetd.agent.unitdir import UnitDirectory
from fleetd.agent.units import UnitManager, not_found
from fleetd.errors import FleetError, SystemdError, SystemdUnavailable
from fleetd.model import DesiredState
from fleetd.retry import Backoff

log = logging.getLogger(__name__)

RUNNING = frozenset({"active", "activating", "reloading"})


class PhaseFailed(FleetError):
    """A phase of a pass failed; the rest of the pass was skipped."""


class Reconciler:
    def __init__(
        self,
        *,
        manager: UnitManager,
        unitdir: UnitDirectory,
        bodies: Bodies,
        schedule: ScheduleView,
        publisher: Publisher,
        fenced: Callable[[], bool],
        cover: Callable[[list[str]], Awaitable[None]] | None = None,
        interval: float = 30.0,
        debounce: float = 0.005,
        max_delay: float = 0.25,
    ) -> None:
        self.manager = manager
        self.unitdir = unitdir
        self.bodies = bodies
        self.schedule = schedule
        self.publisher = publisher
        self.fenced = fenced
        self.cover = cover
        self.interval = interval
        self.debounce = debounce
        self.max_delay = max_delay
        self.files: dict[str, str] = {}  # name -> hash of the file in units_directory
        self.started: dict[str, str] = {}  # name -> hash the agent started
        self.passes = 0
        self.errors = 0  # passes that failed (each is retried)
        self.idle = asyncio.Event()  # set after a pass that found nothing left to do
        self._wake = asyncio.Event()
        self._last_tasks: list[Task] = []

    def trigger(self) -> None:
        self.idle.clear()
        self._wake.set()

    # --- state ------------------------------------------------------------

    def adopt(self) -> None:
        """Read the files already in ``units_directory`` (after a restart)."""
        self.unitdir.ensure()
        for name, text in self.unitdir.contents().items():
            body = self.bodies.remember(name, text)
            if body is not None:
                self.files[name] = body.hash
                self.publisher.managed(name, body.hash)
            else:
                log.warning("unit file %s is not valid; it will be replaced or removed", name)
                self.files[name] = ""
        if self.files:
            log.info("adopt units=%d reason='found in %s'", len(self.files), self.unitdir.path)

    def _current(self) -> list[CurrentUnit]:
        current = []
        for name, hash_ in self.files.items():
            status = self.manager.status.get(name)
            running = status is not None and status.active_state in RUNNING
            # anything but not-found: systemd read our file (a bad one stays bad however
            # often it is linked again; its state shows why)
            loaded = status is not None and status.load_state != "not-found"
            current.append(
                CurrentUnit(name, hash_, loaded, running or self.started.get(name) == hash_)
            )
        return current

    def at_most_once_units(self) -> frozenset[str]:
        """The ``AtMostOnce`` units whose files are here (systemd's fence stops these)."""
        return frozenset(n for n, h in self.files.items() if self._at_most_once(h))

    def forget_started(self, names: frozenset[str]) -> None:
        """Something else may have stopped ``names`` (systemd's fence): start them again
        if they are to run here."""
        for name in names:
            self.started.pop(name, None)
        self.trigger()

    def _at_most_once(self, *hashes: str) -> bool:
        return any((b := self.bodies.get(h)) is not None and b.at_most_once for h in hashes)

    async def _desired(self) -> list[DesiredUnit]:
        """The schedule, minus units whose body is unavailable (left as they are), with
        ``AtMostOnce`` units held at ``loaded`` while fenced."""
        fenced = self.fenced()
        entries = [
            e for e in self.schedule.entries.values() if e.desired is not DesiredState.INACTIVE
        ]
        unavailable = await self.bodies.fetch_all(
            (e.name, e.hash) for e in entries if self.files.get(e.name) != e.hash
        )
        desired = []
        for entry in entries:
            current_hash = self.files.get(entry.name)
            if entry.name in unavailable:
                log.warning(
                    "unit %s: body for hash %s not available yet", entry.name, entry.hash[:7]
                )
                if current_hash is not None:  # leave it as it is
                    state = entry.desired if current_hash else DesiredState.LOADED
                    desired.append(DesiredUnit(entry.name, current_hash, state))
                continue
            state = entry.desired
            if (
                fenced
                and state is DesiredState.LAUNCHED
                and self._at_most_once(entry.hash, current_hash or "")
            ):
                state = DesiredState.LOADED
            desired.append(DesiredUnit(entry.name, entry.hash, state))
        return desired

    # --- passes -----------------------------------------------------------

    async def run(self, ready: Callable[[], Awaitable[None]]) -> None:
        """Wait for ``ready()`` (registered, schedule read, systemd connected), then pass
        after every trigger and every ``interval``; failed passes retry with backoff."""
        await ready()
        backoff = Backoff("agent pass", log)
        while True:
            try:
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            await self._settle()
            try:
                await self.reconcile_once()
                backoff.succeeded()
            except FleetError as exc:
                self.errors += 1
                await backoff.failed(exc)
                self._wake.set()

    async def _settle(self) -> None:
        """Debounce: wait until no trigger came for ``debounce`` seconds (at most
        ``max_delay``), so that a burst of schedule changes becomes one pass."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.max_delay
        while True:
            self._wake.clear()
            await asyncio.sleep(self.debounce)
            if not self._wake.is_set() or loop.time() >= give_up:
                self._wake.clear()
                return

    async def reconcile_once(self) -> list[Task]:
        """One pass; returns the tasks it ran.  Raises on the first failed phase."""
        if not self.manager.connected:
            raise SystemdUnavailable("not connected to systemd")
        desired = await self._desired()
        tasks = plan(desired, self._current())
        self.passes += 1
        wanted = {d.hash for d in desired} | set(self.files.values())
        for kind, group in phases(tasks):
            for task in group:
                log.info("%s", task.describe())
            await self._run_phase(kind, group)
        self.bodies.forget_except(wanted)
        if not tasks:
            self.idle.set()
        elif tasks == self._last_tasks:
            log.warning("the same %d tasks are due again; next pass on a change", len(tasks))
        else:
            self.trigger()  # one more pass confirms that nothing is left
        self._last_tasks = tasks
        return tasks

    async def _run_phase(self, kind: TaskKind, tasks: list[Task]) -> None:
        if kind is TaskKind.STOP:
            await self._each(tasks, self._stop)
        elif kind is TaskKind.UNLOAD:
            await self._unload([t.unit for t in tasks])
        elif kind is TaskKind.LOAD:
            await self._load(tasks)
        elif kind is TaskKind.RELOAD:
            await self.manager.reload()
            await self.manager.resync()
        else:
            if self.cover is not None:  # no AtMostOnce unit starts outside systemd's fence
                await self.cover([t.unit for t in tasks])
            await self._each(tasks, self._start)

    async def _each(self, tasks: list[Task], action: Callable[[Task], Awaitable[None]]) -> None:
        results = await asyncio.gather(*(action(t) for t in tasks), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for err in errors:
            if not isinstance(err, FleetError):
                raise err
        if errors:
            raise PhaseFailed(f"{tasks[0].kind}: {len(errors)} failed, first: {errors[0]}")

    async def _stop(self, task: Task) -> None:
        result = await self.manager.stop(task.unit)
        if result != "done":
            raise SystemdError(f"stopping {task.unit} ended with job result {result!r}")
        self.started.pop(task.unit, None)

    async def _start(self, task: Task) -> None:
        try:
            result = await self.manager.start(task.unit)
        except SystemdUnavailable:
            raise
        except SystemdError as exc:
            log.warning("start unit=%s failed: %s (%s)", task.unit, exc, exc.name)
            result = "refused"
        self.started[task.unit] = self.files[task.unit]
        if result != "done":
            log.warning("start unit=%s job result=%s", task.unit, result)

    async def _load(self, tasks: list[Task]) -> None:
        paths, install = [], []
        for task in tasks:
            body = self.bodies.get(task.hash)
            if body is None:
                raise PhaseFailed(f"load {task.unit}: body {task.hash[:7]} is not available")
            paths.append(str(self.unitdir.write(task.unit, body.text)))
            self.files[task.unit] = body.hash
            self.publisher.managed(task.unit, body.hash)
            if body.has_install:
                install.append(task.unit)
        await self.manager.link(paths)
        await self.manager.enable(install)
        names = [t.unit for t in tasks]
        await self.manager.track(names)
        status = self.manager.status
        unseen = [n for n in names if status.get(n, not_found(n)).load_state == "not-found"]
        if unseen:  # systemd kept an old "not found" for them: make it read its directories
            log.info("reload reason=%r", f"systemd did not see {len(unseen)} new unit files")
            await self.manager.reload()
            await self.manager.resync()

    async def _unload(self, names: list[str]) -> None:
        try:
            await self.manager.disable(names)
        except SystemdUnavailable:
            raise
        except SystemdError as exc:
            log.warning("disable units=%s: %s (%s)", ",".join(names), exc, exc.name)
        for name in names:
            await self.manager.reset_failed(name)
            self.manager.unlink(str(self.unitdir.file(name)))
            self.unitdir.remove(name)
            self.files.pop(name, None)
            self.started.pop(name, None)
            self.publisher.unmanaged(name)
        self.manager.untrack(names)
