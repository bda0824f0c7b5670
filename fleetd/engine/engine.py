"""The engine: leader election, cluster model, reconcile loop and fenced writes.

``Engine.run()`` supervises everything in one TaskGroup: the leadership
task, and while this process leads, the five registry mirrors and the
reconcile loop (in a nested TaskGroup that ends when leadership is lost).
A follower watches nothing but the leader key.

Rolling updates are driven by the leader too: ``RolloutDriver``
(fleetd/rollouts/driver.py) runs in the same nested TaskGroup, and so does
the maintenance of machines: ``MaintenanceDriver`` (fleetd/maintenance/driver.py),
which asks the engine to move units (``request_moves``) and judges drains from
its model.

Reconcile: any model change wakes the loop, which waits a few milliseconds
to coalesce a burst, then runs one pass (``reconcile``):

1. choose: what changed since the last pass (the model's ChangeLog, see
   engine/changes.py) gets a scoped pass (engine/scope.py) unless a change,
   a due timer or the safety pass (engine/cadence.py) asks for a full one;
   every full pass has a reason (``last_full_reason``, and the log line);
2. plan: the pure ``plan()`` of the scope, or of a snapshot of the whole
   model in a worker thread (it can take seconds with 100,000 units; the
   leader lease is refreshed from a thread of its own anyway, engine/keeper.py);
3. apply: the tasks in transactions of at most 128 operations, each guarded
   by the create revision of ``engine/leader``; a failure asks for a full
   pass, and the loop retries;
4. record: timers, the kept machine slots after a full pass, metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from fleetd.clustersettings import ClusterSettings
from fleetd.engine.cadence import Cadence
from fleetd.engine.changes import Cause, FullReason
from fleetd.engine.guard import Guard, decide
from fleetd.engine.leader import Leadership
from fleetd.engine.mirrors import Collection, Parsed, collections_for, read_states
from fleetd.engine.model import ClusterModel
from fleetd.engine.plan import Action, ClusterSnapshot, Plan, Task, plan
from fleetd.engine.scope import Scope, plan_scope
from fleetd.engine.settings import (
    EngineMetrics,
    EngineSettings,
    settings_from_config,
    with_cluster,
)
from fleetd.errors import FleetError, NotLeader, RegistryError
from fleetd.maintenance.driver import MaintenanceDriver
from fleetd.model import GuardRecord, UnitState
from fleetd.registry import codec
from fleetd.registry.base import MAX_TXN_OPS, Delete, EventType, Op, Registry
from fleetd.registry.store import Snapshot, Store
from fleetd.retry import Backoff
from fleetd.rollouts.driver import RolloutDriver

__all__ = ["Engine", "EngineMetrics", "EngineSettings", "settings_from_config"]

log = logging.getLogger(__name__)

_INLINE_EVENTS = 64
"""Mirror batches larger than this are applied in a worker thread."""

REQUESTED = FullReason(Cause.REQUESTED, "a full pass was asked for")
_UNKNOWN: GuardRecord = GuardRecord("unknown", "", 0.0, 0.0)
"""What a new leader assumes ``engine/guard`` holds: its first pass writes it either way."""


@dataclass(frozen=True, slots=True)
class FullPass:
    """A pass over the whole model, and why it runs."""

    snapshot: ClusterSnapshot
    reason: FullReason


class _Deposed(Exception):
    """Ends the leading TaskGroup when leadership is lost."""


class Engine:
    def __init__(
        self,
        store: Store,
        machine_id: str,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float] = time.time,
        settings: EngineSettings | None = None,
        lease_registry: Callable[[], Registry] | None = None,
    ) -> None:
        """``lease_registry``: makes a connection of its own to the registry, for the leader
        lease's keep-alive thread (engine/keeper.py; None: refreshed from this loop)."""
        self.store = store
        self.clock = clock
        self.wall = wall
        self.base = settings or EngineSettings()  # from the configuration
        self.cluster = ClusterSettings()  # cluster/settings, as last read
        self.settings = self.base  # the base with the cluster settings set
        self._cluster_read = asyncio.Event()
        self.metrics = EngineMetrics()
        self.leadership = Leadership(
            store,
            machine_id,
            ttl=self.settings.leader_ttl,
            clock=clock,
            lease_registry=lease_registry,
        )
        self.model = ClusterModel()
        self._parsed: Parsed = {}  # kept across leadership changes
        self._model_lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._loaded = asyncio.Event()
        self._own_writes = 0
        self.cadence = Cadence(self.settings)
        self.last_full_reason: FullReason | None = None  # why the last full pass ran
        self._unplaceable: set[str] = set()  # as of the last pass, full or scoped
        self._leading_since = -math.inf  # when this process last became leader
        self._seen: set[str] = set()  # machines seen registered since then
        self._departed: dict[str, float] = {}  # machines seen vanish lately -> when
        self.guard: Guard | None = None  # the mass-loss guard, as of the last pass
        self._guard_planned: str | None = None  # its reason when a full pass last planned it
        self._guarded: set[str] = set()  # units it keeps, as of the last passes
        self._guard_record: GuardRecord | None = None  # of self.guard, in wall time
        self._guard_offset = 0.0  # wall time - engine clock, since the guard holds
        self._published: GuardRecord | None = _UNKNOWN  # what engine/guard holds
        self.rollouts = RolloutDriver(store, wall=wall)
        self.refused: dict[str, str] = {}  # move requests the last passes could not meet
        self.maintenance = MaintenanceDriver(
            store,
            self,
            wall=wall,
            timeouts=self.settings.maintenance_timeouts,
            move_timeout=self.settings.start_first_timeout,
        )

    @property
    def model_lock(self) -> asyncio.Lock:
        """Held while the model changes (a mirror applying a batch may do so in a thread)."""
        return self._model_lock

    def trigger(self) -> None:
        """Ask for a reconcile pass soon (e.g. after the injected clock moved)."""
        self._dirty.set()
        self.rollouts.trigger()
        self.maintenance.trigger()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watch_cluster(), name="engine-cluster-settings")
            group.create_task(self.leadership.run(), name="engine-leadership")
            group.create_task(self._lead_when_elected(), name="engine-lead")

    async def _watch_cluster(self) -> None:
        """Follow ``cluster/settings`` (leader and followers alike), so that a new leader
        plans with them from its first pass and a change applies without a restart."""
        key = self.store.keys.cluster_settings
        backoff = Backoff("engine: cluster settings", log)
        while True:
            try:
                async for item in self.store.mirror(key):
                    backoff.succeeded()
                    if isinstance(item, Snapshot):
                        kv = item.items.get(key)
                        self._apply_cluster(key, kv.value if kv else None)
                    else:
                        for event in item.events:
                            if event.key == key:
                                value = None if event.type is EventType.DELETE else event.value
                                self._apply_cluster(key, value)
                    self._cluster_read.set()
            except RegistryError as exc:
                await backoff.failed(exc)

    def _apply_cluster(self, key: str, value: bytes | None) -> None:
        """Take the cluster settings read (None: none set); a change asks for a full pass."""
        try:
            cluster = (
                ClusterSettings() if value is None else codec.decode_cluster_settings(key, value)
            )
        except RegistryError as exc:  # only a write past the API can do this
            log.error("engine: %s; the settings in force stay", exc)
            return
        if cluster == self.cluster:
            return
        old, new = self.cluster.values(), cluster.values()
        changed = sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n))
        self.cluster = cluster
        self.settings = with_cluster(self.base, cluster)
        shown = ", ".join(f"{n}={new.get(n, 'default')}" for n in changed)
        log.info("engine: cluster settings: %s", shown)
        if self._cluster_read.is_set():
            self.model.changes.full(Cause.SETTINGS, f"cluster settings changed: {shown}")
            self.cadence.changed()
            self.trigger()

    async def _lead_when_elected(self) -> None:
        while True:
            await self.leadership.elected.wait()
            revision = self.leadership.revision
            if revision is None:
                continue
            self.metrics.leader = 1
            self.metrics.leader_changes_total += 1
            try:
                await self._lead(revision)
            except* _Deposed:
                pass
            finally:
                self.metrics.leader = 0
                self._reset()

    async def _lead(self, revision: int) -> None:
        await self._cluster_read.wait()  # the guard's thresholds and the strategy
        self._leading_since = self.clock()
        self._seen = set()
        self._departed = {}
        self.guard, self._guard_record, self._published = None, None, _UNKNOWN
        self._guard_planned, self._guarded = None, set()
        collections = collections_for(
            self.model,
            self.store,
            self.settings.defaults,
            self.clock,
            lambda: self._own_writes,
            self._parsed,
        )
        async with asyncio.TaskGroup() as group:
            group.create_task(self._until_deposed(), name="engine-deposed")
            for collection in collections:
                group.create_task(self._mirror(collection, collections), name="engine-mirror")
            group.create_task(self._reconcile_loop(revision), name="engine-reconcile")
            group.create_task(self._drive_rollouts(revision), name="engine-rollouts")
            group.create_task(self._drive_maintenance(revision), name="engine-maintenance")

    async def _drive_maintenance(self, revision: int) -> None:
        await self._loaded.wait()  # it judges drains from the model: a complete one
        try:
            await self.maintenance.run(revision)
        except* NotLeader as errors:
            self.metrics.fenced_writes_total += 1
            self.leadership.step_down(str(errors.exceptions[0]))
            raise _Deposed from None

    async def _drive_rollouts(self, revision: int) -> None:
        try:
            await self.rollouts.run(revision)
        except NotLeader as exc:
            self.metrics.fenced_writes_total += 1
            self.leadership.step_down(str(exc))
            raise _Deposed from exc

    async def _until_deposed(self) -> None:
        await self.leadership.deposed.wait()
        raise _Deposed

    def _reset(self) -> None:
        self.model = ClusterModel()
        self._loaded.clear()
        self._own_writes = 0
        self.cadence = Cadence(self.settings)

    async def _mirror(self, collection: Collection, every: list[Collection]) -> None:
        backoff = Backoff(f"engine: mirror {collection.prefix}", log)
        while True:
            try:
                async for item in self.store.mirror(collection.prefix):
                    backoff.succeeded()
                    async with self._model_lock:
                        # Parsing many unit files would stall the loop (and the lease).
                        big = isinstance(item, Snapshot) or len(item.events) > _INLINE_EVENTS
                        if big:
                            changed = await asyncio.to_thread(collection.apply, item)
                        else:
                            changed = collection.apply(item)
                    if changed:
                        self.cadence.changed()
                        self._dirty.set()
                    if not self._loaded.is_set() and all(c.loaded for c in every):
                        self._loaded.set()
            except RegistryError as exc:
                await backoff.failed(exc)

    async def _reconcile_loop(self, revision: int) -> None:
        await self._loaded.wait()
        self._dirty.set()
        backoff = Backoff("engine: reconcile", log)
        while True:
            woken, polls = True, self.cadence.polls_first()
            try:
                async with asyncio.timeout(self.cadence.wait(self.clock())):
                    await self._dirty.wait()
            except TimeoutError:
                woken = False
            await asyncio.sleep(self.settings.debounce)  # let a burst of events coalesce
            self._dirty.clear()
            due = self.cadence.due(self.clock())
            async with self._model_lock:
                ripe = self.model.graced_out(self.clock())  # a scoped pass places them
            if ripe:
                self.cadence.changed()
            if due is None and not woken and not polls and not ripe:
                due = FullReason(Cause.SAFETY, "safety pass")
            try:
                await self.reconcile(revision, due=due)
                backoff.succeeded()
            except RegistryError as exc:
                # Chunks written before the failure come back through the mirrors.
                await backoff.failed(exc)
                self._dirty.set()

    async def reconcile(self, revision: int, *, due: FullReason | None = REQUESTED) -> Plan:
        """One pass: choose it, plan, apply the fenced writes, record it.

        ``due``: why a full pass is due regardless of what changed (None: a scoped
        pass of what changed since the last pass, unless a change needs a full one)."""
        if self.leadership.leading() != revision:
            self.leadership.step_down("lease deadline passed before a reconcile")
            raise _Deposed
        started, changes = time.perf_counter(), self.cadence.changes
        await self._forget_stopped()
        states = await self._read_states()
        now = self.clock()
        work = await self._choose(now, due, states)
        try:
            result = await self._plan(work)
            self.metrics.plan_seconds = time.perf_counter() - started
            await self._apply(result.tasks, revision)
        except BaseException:
            # What changed was not (all) written: look at everything next time.
            self.model.changes.full(Cause.FAILED, "the last pass did not finish")
            self.cadence.changed()
            raise
        await self._record(work, result, now, started, changes)
        await self._publish_guard(revision)
        return result

    async def _publish_guard(self, revision: int) -> None:
        """Write ``engine/guard`` when the guard started, changed or ended (fenced, under
        the leader's lease: it goes with this leader)."""
        record = self._guard_record
        if record is not None:
            record = replace(record, units=self.metrics.guarded)
        if self._published is _UNKNOWN:  # a new leader: a last one's may still be there
            with contextlib.suppress(FleetError):
                self._published = await self.store.get_guard()
        if record == self._published:
            return
        op = self.store.guard_op(record, self.leadership.lease)
        try:
            await self.store.write_fenced([op], revision)
        except NotLeader as exc:
            self.metrics.fenced_writes_total += 1
            self.leadership.step_down(str(exc))
            raise _Deposed from exc
        self._published = record

    async def _read_states(self) -> dict[tuple[str, str], UnitState]:
        """What the machines a pass must hear from report (``read_states``)."""
        return await read_states(self.store, self.model)

    def request_moves(self, moves: Mapping[str, str]) -> None:
        """Ask for units to be moved (unit -> machine), start-first unless AtMostOnce; a
        move that cannot be made now is in ``refused`` after the next pass.  The
        requests replace the previous ones and last while this process leads."""
        if not self.model.request_moves(moves):
            return
        self.cadence.changed()
        self._dirty.set()

    async def _choose(
        self, now: float, due: FullReason | None, states: Mapping[tuple[str, str], UnitState]
    ) -> Scope | FullPass:
        """A scoped pass of what changed, or a snapshot of everything with the reason (a
        change that needs it comes first, then ``due``, then why no scope would do)."""
        s = self.settings
        async with self._model_lock:
            model = self.model
            change = model.change()
            gone = None if isinstance(change, FullReason) else change.gone
            absent = model.absent(now, gone)
            guard = self._guard(now, absent)
            if self.guard is None:
                self._guard_planned = None
            if isinstance(change, FullReason):
                due = change
            elif (
                due is None and self.guard is not None and self.guard.reason != self._guard_planned
            ):
                # It starts or changed: every unit it holds says why (then scoped passes).
                due = FullReason(Cause.NOT_SCOPED, self.guard.reason)
            elif due is None:
                found = model.scope(
                    change,
                    now,
                    wall=self.wall(),
                    grace=s.at_most_once_grace,
                    strategy=s.strategy,
                    drain_batch=self.cadence.drain_batch(now),
                    states=states,
                    move_timeout=s.start_first_timeout,
                    guard=guard,
                )
                if isinstance(found, Scope):
                    return found
                due = found
            if model.ledger is None:  # after a read: O(units), off the event loop
                await asyncio.to_thread(model.rebuild_ledger)
            snap = model.snapshot(
                now,
                wall=self.wall(),
                grace=s.at_most_once_grace,
                strategy=s.strategy,
                drain_batch=self.cadence.drain_batch(now),
                states=states,
                move_timeout=s.start_first_timeout,
                guard=guard,
            )
        return FullPass(snap, due)

    def _guard(self, now: float, absent: Mapping[str, float]) -> Guard | None:
        """The mass-loss guard now (engine/guard.py), given the ``absent`` machines; logged
        when it starts and ends to matter (absent machines with units)."""
        model = self.model
        self._seen.update(model.machines)
        s = self.settings.guard
        departed = self._departed
        for machine, since in absent.items():
            departed[machine] = max(departed.get(machine, since), since)
        for machine in [m for m, t in departed.items() if now - t > s.window + s.hold]:
            del departed[machine]
        guard = decide(
            now,
            leading_since=self._leading_since,
            departed=departed,
            unseen=sum(1 for m in absent if m not in self._seen),
            machines=len(model.machines) + len(absent),
            settings=self.settings.guard,
        )
        held = guard if absent else None
        if (held is None) != (self.guard is None):
            if held is not None:
                log.warning("engine: %s (absent: %s)", held.reason, ", ".join(sorted(absent)))
            else:
                gone = ", ".join(sorted(absent)) or "none"
                log.warning("engine: mass-loss guard ended (absent: %s)", gone)
        if held is None:
            self._guard_record = None
        else:
            last = self._guard_record
            if last is None:  # the engine clock to wall time, fixed while it holds
                self._guard_offset = self.wall() - now
            offset = self._guard_offset
            self._guard_record = GuardRecord(
                cause=held.cause.value,
                reason=held.reason,
                since=last.since if last is not None else round(now + offset, 3),
                until=round(held.until + offset, 3),
                absent=tuple(sorted(absent)),
            )
        self.guard = held
        return guard

    async def _plan(self, work: Scope | FullPass) -> Plan:
        if isinstance(work, Scope):
            return plan_scope(work)  # small: no thread hop
        if self.settings.plan_in_thread:
            return await asyncio.to_thread(plan, work.snapshot)
        return plan(work.snapshot)

    async def _record(
        self, work: Scope | FullPass, result: Plan, now: float, started: float, changes: int
    ) -> None:
        """What a successful pass leaves behind: AtMostOnce units being stopped, the kept
        machine slots (rebuilt after a full pass, off the loop), timers, then its report."""
        model = self.model
        model.stopping_begins(result.stopping)
        if model.room_freed(result.freed):
            self._dirty.set()  # a follow-up scoped pass offers it to the units waiting
        full = isinstance(work, FullPass)
        model.grace(work.units if isinstance(work, Scope) else None, result.graced)
        self.cadence.grace_at = model.grace_ends
        async with self._model_lock:
            model.forget_machines()
            if full:
                await asyncio.to_thread(model.kept_slots, self.settings.strategy)
        elapsed = time.perf_counter() - started
        if isinstance(work, FullPass):
            self.refused = dict(result.decision.refused)
        else:  # every unit asked to move is in a scoped pass (ClusterModel.unsettled)
            kept = {u: why for u, why in self.refused.items() if u not in work.units}
            self.refused = {**kept, **result.decision.refused}
        self.cadence.passed(
            now,
            result,
            full=full,
            seconds=elapsed,
            changes=changes,
            stopping=bool(model.stopping),
            moving=bool(model.marked or model.moves or result.decision.waiting),
        )
        self._report(work, result, elapsed)
        if result.tasks:
            self.maintenance.trigger()  # a drain may have moved on

    def _report(self, work: Scope | FullPass, result: Plan, elapsed: float) -> None:
        """Metrics, why the last full pass ran, and the log line of a pass."""
        m = self.metrics
        m.reconciles_total += 1
        m.reconcile_seconds = elapsed
        m.reconcile_seconds_total += elapsed
        if isinstance(work, FullPass):
            m.full_reconciles_total += 1
            self._guarded = set(result.guarded)
            self._guard_planned = self.guard.reason if self.guard is not None else None
            self.last_full_reason = work.reason
            self._unplaceable = set(result.decision.unplaceable)
            kind = f"full, {work.reason}"
            routine = work.reason.cause in (Cause.TIMER, Cause.SAFETY)
        else:  # a scoped pass decided only about its own units
            self._guarded = (self._guarded - work.units) | set(result.guarded)
            self._unplaceable -= work.units
            self._unplaceable.update(result.decision.unplaceable)
            kind, routine = f"scoped, units: {len(work.units)}", True
        m.unplaceable = len(self._unplaceable)
        m.guarded = len(self._guarded)
        # Passes that found nothing to do stay quiet, unless a change forced a full one.
        quiet = routine and not result.tasks
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "engine: pass %d (%s): %d tasks (%d placed, %d unplaceable) in %.3fs (plan %.3fs)",
            m.reconciles_total,
            kind,
            len(result.tasks),
            result.placed,
            result.unplaceable,
            elapsed,
            m.plan_seconds,
        )

    async def _forget_stopped(self) -> None:
        """Drop AtMostOnce units from ``stopping`` once their old machine no longer runs
        them: its state says inactive/failed, the state is gone, or the machine is gone
        (its agent fences AtMostOnce units before its lease can expire)."""
        model = self.model
        for unit, machine in list(model.stopping.items()):
            if unit not in model.units or machine not in model.machines:
                model.stopped(unit)
                continue
            kv = await self.store.registry.get(self.store.keys.state(machine, unit))
            if kv is None:
                model.stopped(unit)
                continue
            try:
                state = self.store.state_from(kv.key, kv.value)
            except FleetError as exc:
                log.error("engine: unreadable state of %s on %s: %s", unit, machine, exc)
                continue
            if state.active_state in ("inactive", "failed"):
                model.stopped(unit)

    async def _apply(self, tasks: tuple[Task, ...], revision: int) -> None:
        if not tasks:
            return
        ops = [self._op(task) for task in tasks]
        # Mirrors wait until the model has these writes and _own_writes their revision:
        # an echo that came back before the last write did would count as someone
        # else's write (and cost a needless full pass).
        async with self._model_lock:
            try:
                self._own_writes = await self._write(ops, revision)
            except NotLeader as exc:
                self.metrics.fenced_writes_total += 1
                self.leadership.step_down(str(exc))
                raise _Deposed from exc
            self.model.apply_tasks(tasks)
            self.cadence.changed()
        m = self.metrics
        m.write_ops_total += len(ops)
        m.write_transactions_total += -(-len(ops) // MAX_TXN_OPS)
        m.placements_total += sum(1 for t in tasks if t.action is Action.SCHEDULE)
        m.unschedules_total += sum(1 for t in tasks if t.action is Action.UNSCHEDULE)

    async def _write(self, ops: list[Op], revision: int) -> int:
        """Fenced transactions of <= MAX_TXN_OPS, a few in flight at once.

        Deletes (unschedules) all commit before any put is sent, so a unit
        that moves never has two entries at once.
        """
        split = next((i for i, op in enumerate(ops) if not isinstance(op, Delete)), len(ops))
        newest = 0
        limit = asyncio.Semaphore(self.settings.write_concurrency)

        async def one(chunk: list[Op]) -> int:
            async with limit:
                return await self.store.write_fenced(chunk, revision)

        for phase in (ops[:split], ops[split:]):
            chunks = [phase[i : i + MAX_TXN_OPS] for i in range(0, len(phase), MAX_TXN_OPS)]

            try:
                async with asyncio.TaskGroup() as group:
                    running = [group.create_task(one(chunk)) for chunk in chunks]
            except ExceptionGroup as group_error:
                errors = group_error.exceptions
                raise next((e for e in errors if isinstance(e, NotLeader)), errors[0]) from None
            newest = max([newest, *(t.result() for t in running)])
        return newest

    def _op(self, task: Task) -> Op:
        store = self.store
        if task.action is Action.UNSCHEDULE:
            return store.unschedule_op(task.machine, task.unit)
        if task.entry is not None:
            return store.schedule_op(task.entry)
        if task.placement is not None:
            return store.placement_op(task.placement)
        return store.clear_placement_op(task.unit)
