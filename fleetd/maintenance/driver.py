"""The engine leader's maintenance driver: registry + engine model -> ``step`` -> one
fenced transaction -> the moves the engine is asked for.

It runs as a task of the engine while this process leads (engine/engine.py).  It
takes a step at once on a change under ``maintenance/`` or ``reboot-requests/`` and
when the engine triggers it after a pass, and otherwise every ``tick`` seconds while
a maintenance is active or requests wait, every ``idle`` seconds when none is (a
step then reads the record and the requests and finds nothing to do).  A step reads
the record, the machine actions and the reboot requests, the states of the machines
that drain, and the rest from the engine's model (machines, flags, schedule, placement reasons,
``AtMostOnce`` units being stopped, start-first moves), lets the pure ``step``
(fleetd/maintenance/plan.py) decide, and writes the record with the flags and
actions of the step in one transaction guarded by the leader's fence and the
record's mod revision.  Reboot requests become a maintenance of their own
(``requested``) when none is active, its size the cluster's ``max_unavailable``.

Everything is in the record and the registry: a new leader, on this machine or
another, goes on where the last one stopped (the leader's own machine may be the
one rebooted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

from fleetd import clustersettings
from fleetd.clustersettings import ClusterSettings
from fleetd.engine.model import ClusterModel
from fleetd.errors import Conflict, NotLeader, RegistryError
from fleetd.maintenance.drain import budgets_of, drain_status, movable
from fleetd.maintenance.plan import Kind, Seen, Situation, Step, Timeouts, step
from fleetd.maintenance.record import (
    Action,
    Job,
    JobPhase,
    Maintenance,
    RebootRequest,
)
from fleetd.maintenance.store import MaintenanceStore
from fleetd.model import DesiredState, MachineFlags, UnitState
from fleetd.registry.base import Op
from fleetd.registry.store import Store
from fleetd.retry import Backoff

log = logging.getLogger(__name__)


_BACK_SOON = frozenset({JobPhase.ACTING, JobPhase.RETURNING})
"""Jobs whose refill may be decided or asked for in this step."""


class EngineSide(Protocol):
    """What the driver uses of the engine (fleetd/engine/engine.py)."""

    model: ClusterModel
    refused: dict[str, str]
    cluster: ClusterSettings  # cluster/settings as the engine last read them

    @property
    def model_lock(self) -> asyncio.Lock: ...

    def request_moves(self, moves: Mapping[str, str]) -> None: ...


class MaintenanceDriver:
    def __init__(
        self,
        store: Store,
        engine: EngineSide,
        *,
        wall: Callable[[], float],
        tick: float = 0.2,
        idle: float = 5.0,
        timeouts: Timeouts | None = None,
        move_timeout: float = 0.0,
    ) -> None:
        self.store = store
        self.records = MaintenanceStore(store)
        self.engine = engine
        self.wall = wall
        self.tick = tick
        self.idle = idle
        self.timeouts = timeouts or Timeouts()
        self.move_timeout = move_timeout  # of a start-first move (engine/handover.py)
        self.steps_total = 0
        self._nudge = asyncio.Event()

    def trigger(self) -> None:
        """Take a step soon."""
        self._nudge.set()

    async def run(self, fence: int) -> None:
        """Drive maintenance for ever as the leader elected at ``fence``; NotLeader when a
        write finds leadership lost."""
        backoff = Backoff("maintenance", log)
        async with asyncio.TaskGroup() as group:
            for prefix in (self.store.keys.maintenance_prefix, self.store.keys.reboot_requests):
                group.create_task(self._watch(prefix), name="maintenance-watch")
            while True:
                self._nudge.clear()
                busy = True
                try:
                    busy = await self.once(fence)
                    backoff.succeeded()
                except NotLeader:
                    self.engine.request_moves({})
                    raise
                except Conflict as exc:
                    log.info("maintenance: %s; the step is taken again", exc)
                except RegistryError as exc:
                    await backoff.failed(exc)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.tick if busy else self.idle):
                        await self._nudge.wait()

    async def _watch(self, prefix: str) -> None:
        backoff = Backoff(f"maintenance: watching {prefix}", log)
        while True:
            try:
                async for _ in self.store.mirror(prefix):
                    backoff.succeeded()
                    self._nudge.set()
            except RegistryError as exc:
                await backoff.failed(exc)

    async def once(self, fence: int) -> bool:
        """One step; whether a maintenance is active (or requests wait)."""
        found = await self.records.get()
        requests = await self.records.list_requests()
        record, revision = found if found is not None else (None, 0)
        if record is None or not record.active:
            if not requests:
                self.engine.request_moves({})
                return False
            record = await self._serve(requests)
            if record is None:
                return True
        elif record.requested:
            record = await self._more(record, requests)
        result = await self._step(record, requests)
        self.steps_total += 1
        if result.tasks or found is None or found[0] != result.record:
            await self._write(result, revision, fence)
        self.engine.request_moves(result.moves)
        return result.record.active

    async def _serve(self, requests: Mapping[str, RebootRequest]) -> Maintenance | None:
        """A maintenance of the registered machines that ask for a reboot, oldest first."""
        machines = self.engine.model.machines
        asking = sorted(
            (r for r in requests.values() if r.machine in machines), key=lambda r: r.since
        )
        if not asking:
            return None
        now = self.wall()
        log.info("maintenance: serving the reboot requests of %s", _machines(asking))
        return Maintenance(
            id=f"requests-{int(now * 1000)}",
            action=Action(),
            jobs=tuple(Job(r.machine, detail=f"asked: {r.reason}") for r in asking),
            max_unavailable=self._slots(),
            by="reboot requests",
            started=now,
            requested=True,
        )

    def _slots(self) -> int:
        """The reboot semaphore's size: the cluster setting ``max_unavailable``."""
        return self.engine.cluster.max_unavailable or clustersettings.MAX_UNAVAILABLE

    async def _more(
        self, record: Maintenance, requests: Mapping[str, RebootRequest]
    ) -> Maintenance:
        """Requests that came in while one served others join it (a machine done already
        asking again is taken again); the slots follow the cluster setting."""
        record = replace(record, max_unavailable=self._slots())
        for request in sorted(requests.values(), key=lambda r: r.since):
            job = record.job(request.machine)
            if request.machine not in self.engine.model.machines:
                continue
            if job is None or (job.phase is JobPhase.DONE and request.since > job.since):
                record = record.with_job(Job(request.machine, detail=f"asked: {request.reason}"))
        return record

    async def _step(self, record: Maintenance, requests: Mapping[str, RebootRequest]) -> Step:
        actions = await self.records.list_actions()
        draining = [j.machine for j in record.jobs if j.phase is JobPhase.DRAINING]
        states: dict[str, list[UnitState]] = {}
        for machine in draining:
            states[machine] = await self.store.list_states(machine)
        everywhere: dict[tuple[str, str], UnitState] | None = None
        async with self.engine.model_lock:
            model = self.engine.model
            on = _units_on(model)
            if draining and _budgeted(model, draining, on):
                everywhere = {}
        if everywhere is not None:  # a budget may be at stake: what every machine reports
            everywhere = {(s.name, s.machine): s for s in await self.store.list_states()}
        now = self.wall()
        async with self.engine.model_lock:
            model = self.engine.model
            on = _units_on(model)
            budgets = None
            if everywhere is not None:
                budgets = budgets_of(model.units, model.schedule, everywhere, model.stopping)
            seen: dict[str, Seen] = {}
            for job in record.jobs:
                m = job.machine
                drain = None
                if m in states:
                    drain = drain_status(
                        m,
                        units=model.units,
                        on=on.get(m, ()),
                        placements=model.placements,
                        stopping=model.stopping,
                        marked=model.marked,
                        states=states[m],
                        budgets=budgets,
                        now=now,
                        move_timeout=self.move_timeout,
                    )
                seen[m] = Seen(
                    machine=model.machines.get(m),
                    flags=model.flags.get(m, MachineFlags()),
                    action=actions.get(m),
                    drain=drain,
                    units=movable(m, model.units, on.get(m, ())),
                )
            wanted = {
                u
                for j in record.jobs
                if j.phase in _BACK_SOON
                for u in (*j.moved, *(j.refill or ()))
            }
            where = {u: tuple(sorted(ms)) for u, ms in _where(model, wanted).items()}
            refused = dict(self.engine.refused)
        situation = Situation(
            record,
            seen,
            now,
            where=where,
            refused=refused,
            requests=requests,
            timeouts=self.timeouts,
        )
        return step(situation)

    async def _write(self, result: Step, revision: int, fence: int) -> None:
        records = self.records
        ops: list[Op] = []
        for task in result.tasks:
            log.info("maintenance %s: %s: %s", result.record.id, task.machine, task.reason)
            if task.kind is Kind.FLAGS and task.flags is not None:
                ops.append(records.flags_op(task.machine, task.flags))
            elif task.kind is Kind.ACTION and task.action is not None:
                ops.append(records.action_op(task.machine, task.action))
            elif task.kind is Kind.CLEAR_ACTION:
                ops.append(records.clear_action_op(task.machine))
            elif task.kind is Kind.CLEAR_REQUEST:
                ops.append(records.clear_request_op(task.machine))
        await records.advance(result.record, revision, fence, ops)
        record = result.record
        if not record.active:
            log.info("maintenance %s: %s: %s", record.id, record.phase, record.message)


def _units_on(model: ClusterModel) -> dict[str, list[str]]:
    on: dict[str, list[str]] = {}
    for machine, unit in model.schedule:
        on.setdefault(machine, []).append(unit)
    return on


def _where(model: ClusterModel, units: set[str]) -> dict[str, set[str]]:
    """Where each of ``units`` that exists, is to run and may be asked to move (it follows
    no other: a MachineOf follower moves with its peer) is scheduled."""
    found: dict[str, set[str]] = {
        u: set()
        for u in units
        if (spec := model.units.get(u)) is not None
        and spec.desired is not DesiredState.INACTIVE
        and not spec.requirements.machine_of
    }
    if not found:
        return {}
    for machine, unit in model.schedule:
        if unit in found:
            found[unit].add(machine)
    return found


def _budgeted(model: ClusterModel, machines: list[str], on: Mapping[str, list[str]]) -> bool:
    """Whether a unit with a disruption budget is scheduled on one of ``machines``."""
    for machine in machines:
        for unit in on.get(machine, ()):
            spec = model.units.get(unit)
            if spec is not None and spec.requirements.max_unavailable is not None:
                return True
    return False


def _machines(requests: list[RebootRequest]) -> str:
    return ", ".join(r.machine for r in requests)
