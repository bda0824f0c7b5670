"""The engine: leader election, cluster model, reconcile loop and fenced writes.

``Engine.run()`` supervises everything in one TaskGroup: the leadership
task, and while this process leads, the five registry mirrors and the
reconcile loop (in a nested TaskGroup that ends when leadership is lost).
A follower watches nothing but the leader key.

Reconcile: any model change sets a flag; the loop waits a few milliseconds
to coalesce a burst, snapshots the model, runs the pure ``plan()`` in a
worker thread (it can take a second with 100,000 units, and the leader
lease must keep being renewed meanwhile), then applies the tasks in
transactions of at most 128 operations, each guarded by the create revision
of ``engine/leader``.

Events get an incremental pass; a full pass runs when a timer is due (a held
AtMostOnce unit's grace, the next drain batch, a moved AtMostOnce unit to
look at) and as a safety pass that catches whatever the incremental passes
missed: at least ``interval`` seconds apart, stretched so that it costs at
most ``safety_budget`` of a core.  Once a full pass found nothing to do and
the model has not changed since, another one would plan the same input (the
plan is a pure function, and time enters it only through the timers above),
so the safety pass then waits ``idle_interval`` (an insurance against a
change the engine failed to notice).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from fleetd.engine.leader import Leadership
from fleetd.engine.model import ClusterModel, Collection, Parsed, collections_for
from fleetd.engine.plan import Action, Plan, Task, plan
from fleetd.engine.scope import plan_scope
from fleetd.engine.settings import EngineMetrics, EngineSettings, settings_from_config
from fleetd.errors import FleetError, NotLeader, RegistryError
from fleetd.registry.base import MAX_TXN_OPS, Delete, Op
from fleetd.registry.store import Snapshot, Store

__all__ = ["Engine", "EngineMetrics", "EngineSettings", "settings_from_config"]

log = logging.getLogger(__name__)

_INLINE_EVENTS = 64
"""Mirror batches larger than this are applied in a worker thread."""


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
    ) -> None:
        self.store = store
        self.clock = clock
        self.wall = wall
        self.settings = settings or EngineSettings()
        self.metrics = EngineMetrics()
        self.leadership = Leadership(store, machine_id, ttl=self.settings.leader_ttl, clock=clock)
        self.model = ClusterModel()
        self._parsed: Parsed = {}  # kept across leadership changes
        self._model_lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._loaded = asyncio.Event()
        self._own_writes = 0
        self._drain_due: float | None = None
        self._wake_at: float | None = None
        self._full_at = float("-inf")  # when the last full pass started
        self._full_seconds = 0.0  # how long it took
        self._changes = 0  # model changes (mirrors, own writes, failed passes)
        self._settled = -1  # _changes when a full pass last found nothing to do
        self._unplaceable: set[str] = set()  # as of the last pass, full or scoped

    def trigger(self) -> None:
        """Ask for a reconcile pass soon (e.g. after the injected clock moved)."""
        self._dirty.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.leadership.run(), name="engine-leadership")
            group.create_task(self._lead_when_elected(), name="engine-lead")

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

    async def _until_deposed(self) -> None:
        await self.leadership.deposed.wait()
        raise _Deposed

    def _reset(self) -> None:
        self.model = ClusterModel()
        self._loaded.clear()
        self._own_writes = 0
        self._wake_at = None
        self._drain_due = None
        self._full_at = float("-inf")
        self._full_seconds = 0.0
        self._changes, self._settled = 0, -1

    async def _mirror(self, collection: Collection, every: list[Collection]) -> None:
        delay = 0.1
        while True:
            try:
                async for item in self.store.mirror(collection.prefix):
                    delay = 0.1
                    async with self._model_lock:
                        # Parsing many unit files would stall the loop (and the lease).
                        big = isinstance(item, Snapshot) or len(item.events) > _INLINE_EVENTS
                        if big:
                            changed = await asyncio.to_thread(collection.apply, item)
                        else:
                            changed = collection.apply(item)
                    if changed:
                        self._changes += 1
                        self._dirty.set()
                    if not self._loaded.is_set() and all(c.loaded for c in every):
                        self._loaded.set()
            except RegistryError as exc:
                log.warning(
                    "engine: mirror %s: %s; retrying in %.1fs", collection.prefix, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _reconcile_loop(self, revision: int) -> None:
        await self._loaded.wait()
        self._dirty.set()
        delay = 0.1
        while True:
            woken = True
            try:
                async with asyncio.timeout(self._idle_timeout()):
                    await self._dirty.wait()
            except TimeoutError:
                woken = False
            await asyncio.sleep(self.settings.debounce)  # let a burst of events coalesce
            self._dirty.clear()
            # Events get an incremental pass; due timers a full one.
            full = not woken or self._idle_timeout() == 0
            try:
                await self.reconcile(revision, full=full)
                delay = 0.1
            except RegistryError as exc:
                # Chunks written before the failure come back through the mirrors.
                log.warning("engine: reconcile failed: %s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._dirty.set()

    def _idle_timeout(self) -> float:
        """Seconds until the next full pass is due: a timer or the safety pass."""
        s = self.settings
        gap = max(s.interval, self._full_seconds / s.safety_budget)
        if self._settled == self._changes:
            gap = max(gap, s.idle_interval)
        due = min(d for d in (self._full_at + gap, self._wake_at, self._drain_due) if d is not None)
        return max(0.0, due - self.clock())

    async def reconcile(self, revision: int, *, full: bool = True) -> Plan | None:
        """One pass: snapshot, plan, fenced writes.  None if this process is not leading.

        With ``full=False`` only what changed since the last pass is planned (see
        engine/scope.py), unless the change needs a full pass."""
        if self.leadership.leading() != revision:
            self.leadership.step_down("lease deadline passed before a reconcile")
            raise _Deposed
        started = time.perf_counter()
        changes = self._changes
        await self._forget_stopped()
        now = self.clock()
        s = self.settings
        async with self._model_lock:
            model = self.model
            change = model.change()
            scoped = None
            if change is not None and not full:
                scoped = model.scope(
                    change, now, wall=self.wall(), grace=s.at_most_once_grace, strategy=s.strategy
                )
            if scoped is None:
                if model.stale:  # after a full read: O(units), off the event loop
                    await asyncio.to_thread(model.rebuild_index)
                snap = model.snapshot(
                    now,
                    wall=self.wall(),
                    grace=s.at_most_once_grace,
                    strategy=s.strategy,
                    drain_batch=s.drain_batch
                    if self._drain_due is None or now >= self._drain_due
                    else 0,
                )
        try:
            if scoped is not None:
                result = plan_scope(scoped)  # small: no thread hop
            else:
                self._full_at = now
                run = asyncio.to_thread(plan, snap) if s.plan_in_thread else None
                result = await run if run is not None else plan(snap)
            self.metrics.plan_seconds = time.perf_counter() - started
            if result.tasks:
                await self._apply(result.tasks, revision)
        except BaseException:
            self.model.full = True  # what changed was not (all) written: look at everything
            self._changes += 1
            raise
        self.model.stopping.update(result.stopping)
        if scoped is None:
            # More may be left to drain: the next batch is due after drain_interval.
            self._drain_due = now + s.drain_interval if result.drained else None
            self._wake_at = result.wake_at
        elif result.wake_at is not None:
            self._wake_at = min(result.wake_at, self._wake_at or result.wake_at)
        if self.model.stopping:  # states are not watched: look again soon
            soon = now + s.stop_poll
            self._wake_at = soon if self._wake_at is None else min(self._wake_at, soon)
        async with self._model_lock:
            self.model.forget_machines()
            if scoped is None:  # machine slots for the next scoped passes, off the loop
                await asyncio.to_thread(self.model.kept_fleet, s.strategy)
        elapsed = time.perf_counter() - started
        m = self.metrics
        m.reconciles_total += 1
        m.reconcile_seconds = elapsed
        m.reconcile_seconds_total += elapsed
        if scoped is None:
            m.full_reconciles_total += 1
            self._full_seconds = elapsed
            if not result.tasks and changes == self._changes and not self.model.stopping:
                self._settled = changes
            self._unplaceable = set(result.decision.unplaceable)
        else:  # a scoped pass decided only about its own units
            self._unplaceable -= scoped.units
            self._unplaceable.update(result.decision.unplaceable)
        m.unplaceable = len(self._unplaceable)
        if result.tasks:
            log.info(
                "engine: pass %d: %d tasks (%d placed, %d unplaceable) in %.3fs (plan %.3fs)",
                m.reconciles_total,
                len(result.tasks),
                result.placed,
                result.unplaceable,
                elapsed,
                m.plan_seconds,
            )
        return result

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
            self._changes += 1
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
