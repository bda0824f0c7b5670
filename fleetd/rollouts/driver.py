"""The engine leader's rollout driver: view -> ``plan_rollout`` -> fenced writes -> record.

It runs as a task of the engine while this process leads (engine/engine.py).
While no rollout is active it only mirrors ``rollouts/``; while one is, it
keeps a ClusterView (rollouts, units, schedule, states) and takes a step of
every active rollout whenever the view changes or a step's ``wake_at``
(a min-healthy-time or a deadline) comes: the pure ``plan_rollout`` decides,
then the unit texts it asks for are written (each with its new version,
authored ``rollout by <who started it>``) and the record after them, in
transactions guarded by the leader's fence and the record's mod revision
(a pause or an abort in between makes them fail; the step is taken again).
A failed write stops the step; the next change retries it.  After a write
the driver waits until the view has caught up with it, so a step never
plans on a state older than its own writes.

Everything a step needs is in the record and the registry: a new leader
continues where the last one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace

from fleetd.caller import Caller
from fleetd.errors import (
    Conflict,
    FleetError,
    InvalidInput,
    NotFound,
    NotLeader,
    RegistryError,
)
from fleetd.model import Unit
from fleetd.registry.store import Snapshot, Store
from fleetd.registry.unitput import UnitPut
from fleetd.retry import Backoff
from fleetd.rollouts.plan import Action, Step, Task, plan_rollout
from fleetd.rollouts.record import Phase, Rollout
from fleetd.rollouts.view import ClusterView, records_of
from fleetd.versions import versions_for

log = logging.getLogger(__name__)

CATCH_UP = 5.0
"""Seconds to wait for the view to show the driver's own write before going on."""


class RolloutDriver:
    def __init__(
        self,
        store: Store,
        *,
        wall: Callable[[], float],
        debounce: float = 0.005,
        max_wait: float = 1.0,
    ) -> None:
        """``wall``: wall-clock seconds (the records' times); ``max_wait``: the longest a
        step waits for a change or its wake time (a bound for clocks that jump)."""
        self.store = store
        self.wall = wall
        self.debounce = debounce
        self.max_wait = max_wait
        self.steps_total = 0
        self.writes_total = 0
        self._nudge = asyncio.Event()
        self._texts: dict[str, str] = {}  # hash -> text (a hash names one text)

    def trigger(self) -> None:
        """Take a step soon (after the injected clock moved)."""
        self._nudge.set()

    async def run(self, fence: int) -> None:
        """Drive rollouts for ever as the leader elected at ``fence``; NotLeader when a
        write finds leadership lost."""
        backoff = Backoff("rollouts", log)
        while True:
            try:
                await self._until_active()
                await self._session(fence)
                backoff.succeeded()
            except NotLeader:
                raise
            except RegistryError as exc:  # WatchCompacted included: a fresh view next
                await backoff.failed(exc)

    async def _until_active(self) -> None:
        """Return once some rollout is active (watching ``rollouts/`` only)."""
        async for item in self.store.mirror(self.store.keys.rollouts):
            if isinstance(item, Snapshot):
                if any(r.active for r in records_of(item.items, self.store)):
                    return
            else:
                for event in item.events:
                    if event.value:
                        with contextlib.suppress(FleetError, ValueError):
                            if self.store.rollout_from(event.key, event.value).active:
                                return

    async def _session(self, fence: int) -> None:
        """Steps over a full view until no rollout is active."""
        view = ClusterView(self.store)
        start = await view.load()
        try:
            async with asyncio.TaskGroup() as group:
                follower = group.create_task(view.follow(start), name="rollouts-view")
                await self._steps(view, fence)
                follower.cancel()
        except ExceptionGroup as errors:
            # One of the two failed (the other was cancelled): report that one.
            raise errors.exceptions[0] from None

    async def _steps(self, view: ClusterView, fence: int) -> None:
        while True:
            view.changed.clear()
            self._nudge.clear()
            active = view.active()
            if not active:
                self._texts.clear()
                return
            wake: list[float] = []
            wrote = False
            for record, revision in active:
                step = plan_rollout(view.situation(record, self.wall()))
                self.steps_total += 1
                if step.changed or step.tasks:
                    written = await self._apply(record, step, revision, fence)
                    if written:
                        await _caught_up(view, written)
                        wrote = True
                if step.wake_at is not None:
                    wake.append(step.wake_at)
            if wrote:
                continue  # what came in while writing is planned at once
            timeout = self.max_wait
            if wake:
                timeout = min(timeout, max(0.0, min(wake) - self.wall()))
            await _first(view.changed, self._nudge, within=timeout)
            await asyncio.sleep(self.debounce)

    async def _apply(self, before: Rollout, step: Step, revision: int, fence: int) -> int:
        """Write a step; the revision written at (0: nothing was, it is taken again)."""
        record = step.record
        for task in step.tasks:
            log.info("rollouts: %s: %s", record.unit, task.reason)
        try:
            by_unit: dict[str, list[Task]] = {}
            for task in step.tasks:
                by_unit.setdefault(task.unit, []).append(task)
            writes = [
                w
                for unit, tasks in by_unit.items()
                if (w := await self._write(record, unit, tasks)) is not None
            ]
            if not writes and not step.changed:
                return 0
            own = next((w for w in writes if w.unit.name == record.unit and w.versions), None)
            if own is not None and record.reverting and record.revert_version is None:
                record = replace(record, revert_version=own.versions[-1].number)
            written = await self.store.advance_rollout(writes, record, revision, fence)
        except Conflict as exc:
            log.info("rollouts: %s: %s; the step is taken again", record.unit, exc)
            return 0
        except (NotFound, InvalidInput) as exc:
            # A text no longer kept, or too large to be written with its version: this
            # rollout cannot go on.
            record = replace(record, phase=Phase.FAILED, failure=str(exc), message=f"failed: {exc}")
            try:
                written = await self.store.advance_rollout([], record, revision, fence)
            except Conflict:
                return 0
        self.writes_total += 1
        if record.phase is not before.phase:
            log.info("rollouts: %s: %s: %s", record.unit, record.phase, record.message)
        return written

    async def _write(self, record: Rollout, name: str, tasks: list[Task]) -> UnitPut | None:
        """The write of unit ``name`` that ``tasks`` ask for: a new text (WRITE, with the
        version it adds), the Global unit's pins (PIN), or both; None if it has them."""
        found = await self.store.get_unit_with_revision(name)
        if found is None:
            return None  # destroyed meanwhile: the next step sees it gone
        unit, unit_revision = found
        hash_ = next((t.hash for t in tasks if t.action is Action.WRITE), unit.hash)
        pinned = record.pins() if name == record.unit else unit.pinned
        if hash_ == unit.hash and pinned == unit.pinned:
            return None
        if hash_ == unit.hash:
            return UnitPut(replace(unit, pinned=pinned), unit_revision)
        text = await self._text(record, name, hash_)
        head = await self.store.get_version_head(name)
        caller = Caller(f"rollout by {record.by or 'unknown'}")
        added = versions_for(
            name, text, hash_, unit, head[0] if head else None, caller, self.wall()
        )
        changed = Unit(unit.name, text, hash_, unit.desired, pinned)
        return UnitPut(changed, unit_revision, added, head[1] if head else 0)

    async def _text(self, record: Rollout, unit: str, hash_: str) -> str:
        """The file with hash ``hash_``: kept among the versions of ``unit`` or of the rolled
        unit (NotFound if neither keeps it any more)."""
        text = self._texts.get(hash_)
        if text is not None:
            return text
        for name in dict.fromkeys((record.unit, unit)):
            for version in await self.store.list_versions(name):
                self._texts[version.hash] = version.text
        text = self._texts.get(hash_)
        if text is None:
            raise NotFound(
                f"the file with hash {hash_[:7]} is no longer kept among the versions of "
                f"{unit} or {record.unit}"
            )
        return text


async def _caught_up(view: ClusterView, revision: int) -> None:
    deadline = asyncio.get_running_loop().time() + CATCH_UP
    while view.revision < revision:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            log.warning("rollouts: the view is behind revision %d; going on", revision)
            return
        view.changed.clear()  # the caller plans again right after: nothing is lost
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left):
                await view.changed.wait()


async def _first(a: asyncio.Event, b: asyncio.Event, *, within: float) -> None:
    """Wait until ``a`` or ``b`` is set, at most ``within`` seconds."""
    if a.is_set() or b.is_set():
        return
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
