"""The agent's health checks: which units are checked when, and what their health is.

``HealthMonitor.observe(name, active, check)`` is told every change of a
unit's activity (the agent calls it with each status systemd reports) and the
unit's ``HealthCheck`` (``fleetd.healthcheck``, None without one).  While a
unit is active its check runs every ``interval`` seconds, the first one at
once; grace counts from when the monitor saw the unit become active.  A unit
that is not active is not checked.  Each change of a unit's health
(``fleetd.unithealth`` decides it) goes to ``on_change`` once: nothing is
reported for a check whose result changes nothing.

``run()`` is the one task: a single heap of due times (no task per unit
waiting), at most ``concurrency`` checks in flight (each a child task of
``run``, so cancelling ``run`` cancels them and kills their commands).
``clock`` (monotonic) decides when checks are due and whether they fall in
the grace period; ``wall`` stamps ``since``.  Waiting uses the event loop's
timer for ``due - clock()``; with a manual ``clock``, call ``nudge()`` after
moving it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fleetd import unithealth
from fleetd.agent.probes import run_probe
from fleetd.errors import InvalidInput
from fleetd.healthcheck import HealthCheck, Probe
from fleetd.model import UnitHealth
from fleetd.specifiers import HostFacts
from fleetd.unithealth import CheckResult
from fleetd.unitname import UnitName

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 100
Runner = Callable[[Probe, float], Awaitable[CheckResult]]


@dataclass(slots=True)
class _Watched:
    """An active unit."""

    name: str
    check: HealthCheck | None
    probe: Probe | str  # what to run, or why the check cannot run on this machine
    active_since: float
    generation: int


class HealthMonitor:
    def __init__(
        self,
        *,
        host: HostFacts,
        on_change: Callable[[str, UnitHealth], None],
        clock: Callable[[], float],
        wall: Callable[[], float],
        concurrency: int = DEFAULT_CONCURRENCY,
        runner: Runner = run_probe,
    ) -> None:
        self.host = host
        self.on_change = on_change
        self.clock = clock
        self.wall = wall
        self.runner = runner
        self.checks_run = 0
        self.health: dict[str, UnitHealth] = {}  # last reported, per active unit
        self._units: dict[str, _Watched] = {}
        self._heap: list[tuple[float, int, str, int]] = []  # due, tie-break, name, generation
        self._order = itertools.count()
        self._generations = itertools.count(1)
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()

    # --- inputs -----------------------------------------------------------

    def observe(self, name: str, active: bool, check: HealthCheck | None) -> None:
        """The unit's activity and check now (called on every status change)."""
        unit = self._units.get(name)
        if not active:
            if unit is not None:
                del self._units[name]
                self._report(name, unithealth.inactive(self._health(name), self.wall()))
                self.health.pop(name, None)  # remembered for active units only
            return
        if unit is not None and unit.check == check:
            return
        since = unit.active_since if unit is not None else self.clock()
        unit = _Watched(name, check, self._probe(name, check), since, next(self._generations))
        self._units[name] = unit
        if check is None:
            self._report(name, unithealth.unchecked(self._health(name), self.wall()))
        else:
            self._schedule(unit, self.clock())

    def nudge(self) -> None:
        """Re-read the clock (after a manual clock moved)."""
        self._wake.set()

    # --- the loop ---------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            while True:
                await self._until_due()
                now = self.clock()
                while self._heap and self._heap[0][0] <= now:
                    _, _, name, generation = heapq.heappop(self._heap)
                    unit = self._units.get(name)
                    if unit is None or unit.generation != generation:
                        continue  # stopped or restarted since it was scheduled
                    await self._slots.acquire()
                    group.create_task(self._check(unit), name=f"health-check {name}")

    async def _until_due(self) -> None:
        while True:
            self._wake.clear()
            if not self._heap:
                await self._wake.wait()
                continue
            delay = self._heap[0][0] - self.clock()
            if delay <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _check(self, unit: _Watched) -> None:
        started = self.clock()
        try:
            if isinstance(unit.probe, str):
                result = CheckResult(False, unit.probe)
            else:
                assert unit.check is not None
                result = await self.runner(unit.probe, unit.check.timeout)
        finally:
            self._slots.release()
        self.checks_run += 1
        if self._units.get(unit.name) is not unit:
            return  # stopped, restarted or given another check meanwhile
        assert unit.check is not None
        grace = unithealth.in_grace(started, unit.active_since, unit.check.grace)
        self._report(
            unit.name,
            unithealth.judge(self._health(unit.name), result, in_grace=grace, wall=self.wall()),
        )
        self._schedule(unit, max(started + unit.check.interval, self.clock()))

    # --- helpers ----------------------------------------------------------

    def _probe(self, name: str, check: HealthCheck | None) -> Probe | str:
        if check is None:
            return ""
        try:
            return check.probe(UnitName.parse(name), self.host)
        except InvalidInput as exc:
            log.warning("unit %s: %s", name, exc)
            return str(exc)

    def _schedule(self, unit: _Watched, due: float) -> None:
        entry = (due, next(self._order), unit.name, unit.generation)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
            self._wake.set()

    def _health(self, name: str) -> UnitHealth:
        return self.health.get(name, UnitHealth())

    def _report(self, name: str, health: UnitHealth) -> None:
        if self.health.get(name, UnitHealth()) == health:
            return
        self.health[name] = health
        log.info("health unit=%s %s %s", name, health.health, health.message)
        self.on_change(name, health)
