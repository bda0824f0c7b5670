"""The engine's in-memory cluster model, fed by mirrors of the registry.

One ``Collection`` per watched prefix (units, machines, machine flags,
schedule, placement reasons); each takes the mirror's Snapshot/Changes
values and keeps decoded items.  Units are parsed once per (name, hash).
The engine's own writes (schedule, placement) are applied to the model as
soon as they succeed, and their echoes from the watch are skipped by
revision, so a pass never plans against a state older than its own writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fleetd.engine.placements import ScopeIndex
from fleetd.engine.plan import STOPPING, Action, ClusterSnapshot, Task, UnitSpec
from fleetd.engine.scheduler import Fleet, Strategy
from fleetd.engine.scope import Change, Scope, scope
from fleetd.errors import FleetError
from fleetd.model import Machine, MachineFlags, Placement, ScheduleEntry
from fleetd.registry.base import EventType
from fleetd.registry.store import Changes, Snapshot, Store
from fleetd.requirements import Requirements, ReservationDefaults
from fleetd.unitcheck import parse_unit
from fleetd.unittypes import TEMPLATE_TYPES

log = logging.getLogger(__name__)

_FEW = 64
"""Up to this many changed machines (or a quarter of them) are updated in place."""
_MAX_CLASSES = 256
"""A new kept fleet gets a capacity class for every metadata condition set units use
while there are at most this many; one that has more (built for scoped passes since)
is built anew, dropping those no unit uses any more."""


@dataclass(slots=True)
class ClusterModel:
    """Decoded registry state the engine plans with (mutated only by the engine loop)."""

    units: dict[str, UnitSpec] = field(default_factory=dict)
    machines: dict[str, Machine] = field(default_factory=dict)
    flags: dict[str, MachineFlags] = field(default_factory=dict)
    schedule: dict[tuple[str, str], ScheduleEntry] = field(default_factory=dict)
    placements: dict[str, Placement] = field(default_factory=dict)
    lost: dict[str, float] = field(default_factory=dict)  # machine -> when seen gone
    # AtMostOnce units taken off a live machine, until seen stopped there: unit -> machine
    stopping: dict[str, str] = field(default_factory=dict)
    # What changed since the last pass, for an incremental one (see engine/scope.py).
    index: ScopeIndex = field(default_factory=ScopeIndex)
    changed: set[str] = field(default_factory=set)  # units whose spec changed or vanished
    gone: set[str] = field(default_factory=set)  # machines that left
    full: bool = True  # something an incremental pass does not handle happened
    stale: bool = True  # ``index`` must be rebuilt (after a full read)
    # Machine slots kept for scoped passes (None: build anew), and the machines whose
    # slot may be out of date (besides ``index.touched``).
    fleet: Fleet | None = None
    dirty: set[str] = field(default_factory=set)

    def change(self) -> Change | None:
        """What changed since the last call (None: a full pass is needed); resets it."""
        found = (
            None
            if self.full or self.stale
            else Change(frozenset(self.changed), frozenset(self.gone))
        )
        self.changed.clear()
        self.gone.clear()
        self.full = False
        return found

    def rebuild_index(self) -> None:
        """Recompute ``index`` from the units and the schedule (after a full read)."""
        self.index = ScopeIndex.build(self.units, self.schedule)
        self.stale = False
        self.fleet = None

    def scope(
        self, change: Change, now: float, *, wall: float, grace: float, strategy: Strategy
    ) -> Scope | None:
        """A snapshot of what ``change`` touches (None: plan everything).

        The snapshot refers to the kept fleet: plan it before the model changes."""
        kept = self.kept_fleet(strategy)
        found = scope(
            self.index,
            change,
            units=self.units,
            machines=dict(self.machines),
            schedule=self.schedule,
            flags=dict(self.flags),
            placements=self.placements,
            # Machines with entries that are not live are in ``lost`` already (from
            # drop_machine, or from the full pass after whoever wrote those entries).
            lost=self._lost(now, change.gone),
            stopping=self.stopping,
            now=now,
            wall=wall,
            grace=grace,
            strategy=strategy,
            fleet=kept,
        )
        if found is not None:
            # Capacity classes the pass will search are built (and then kept) here.
            for conditions in {s.requirements.metadata for s in found.snapshot.units.values()}:
                kept.index.prepare(conditions)
        return found

    def kept_fleet(self, strategy: Strategy) -> Fleet:
        """The machine slots kept across scoped passes, brought up to date: per machine
        that changed since the last call, or built anew (after a join, a full read, a
        change of strategy, or when most machines changed, e.g. after a full pass)."""
        changed = self.dirty | self.index.touched
        self.dirty = set()
        self.index.touched = set()
        fleet = self.fleet
        if (
            fleet is not None
            and fleet.strategy is strategy
            and (len(changed) <= _FEW or len(changed) <= len(self.machines) // 4)
            and len(fleet.index.classes) <= _MAX_CLASSES
            and all(
                fleet.update(m, self.machines.get(m), self.flags.get(m), self.index.load.get(m))
                for m in changed
            )
        ):
            return fleet
        fleet = self.fleet = Fleet(self.machines.values(), self.flags, self.index.load, strategy)
        if len(self.index.conditions) <= _MAX_CLASSES:
            for conditions in self.index.conditions:  # every condition set units use
                fleet.index.prepare(conditions)
        return fleet

    def _lost(self, now: float, used: Iterable[str] | None = None) -> dict[str, float]:
        """Loss times of machines that still have schedule entries (``used``: those
        machines, or some of them; default: read from the schedule)."""
        for machine in (m for m, _ in self.schedule) if used is None else used:
            if machine not in self.machines:
                self.lost.setdefault(machine, now)
        return dict(self.lost)

    def snapshot(
        self,
        now: float,
        *,
        wall: float,
        grace: float,
        strategy: Strategy,
        drain_batch: int | None,
    ) -> ClusterSnapshot:
        """An immutable copy to plan with (safe to hand to a worker thread)."""
        lost = self._lost(now)
        return ClusterSnapshot(
            units=dict(self.units),
            machines=dict(self.machines),
            schedule=list(self.schedule.values()),
            flags=dict(self.flags),
            placements=dict(self.placements),
            lost=lost,
            now=now,
            wall=wall,
            at_most_once_grace=grace,
            strategy=strategy,
            drain_batch=drain_batch,
            stopping=dict(self.stopping),
        )

    def apply_tasks(self, tasks: Iterable[Task]) -> None:
        """Reflect the engine's own successful writes."""
        for task in tasks:
            if task.action is Action.UNSCHEDULE:
                self.set_entry(task.machine, task.unit, None)
            elif task.entry is not None:
                self.set_entry(task.machine, task.unit, task.entry)
            elif task.placement is not None:
                self.placements[task.unit] = task.placement
            elif task.action is Action.CLEAR:
                self.placements.pop(task.unit, None)

    def set_entry(self, machine: str, unit: str, entry: ScheduleEntry | None) -> None:
        """Put (or with None, drop) one schedule entry, keeping ``index`` up to date."""
        if entry is None:
            if self.schedule.pop((machine, unit), None) is None:
                return
        else:
            self.schedule[(machine, unit)] = entry
        if not self.stale:
            self.index.set_entry(machine, unit, self.units.get(unit), entry is not None)

    def set_unit(self, name: str, spec: UnitSpec | None) -> None:
        """Put (or with None, drop) one unit; a changed spec marks it for the next pass."""
        old = self.units.get(name)
        if old == spec:
            return
        if spec is None:
            del self.units[name]
        else:
            self.units[name] = spec
        self.changed.add(name)
        if old is not None and spec is not None and old.requirements != spec.requirements:
            # Where it runs, it may now push out others (room, conflicts) in name order.
            self.full = self.full or name in self.index.machines_of or self.stale
        if not self.stale:
            self.index.set_unit(name, old, spec)

    def put_machine(self, machine: Machine) -> None:
        if self.machines.get(machine.id) != machine:
            self.full = True  # a new or changed machine: every unit may go there
            self.dirty.add(machine.id)
        self.machines[machine.id] = machine
        self.lost.pop(machine.id, None)

    def drop_machine(self, machine: str, now: float) -> None:
        if self.machines.pop(machine, None) is not None:
            self.lost[machine] = now
            self.gone.add(machine)
            self.dirty.add(machine)

    def set_flags(self, machine: str, flags: MachineFlags | None) -> None:
        """Put (or with None, drop) a machine's flags: a full pass follows."""
        if flags is None:
            self.flags.pop(machine, None)
        else:
            self.flags[machine] = flags
        self.full = True
        self.dirty.add(machine)

    def stopped(self, unit: str) -> None:
        """An AtMostOnce unit was seen stopped on the machine it left: place it again."""
        if self.stopping.pop(unit, None) is not None:
            self.changed.add(unit)

    def forget_machines(self) -> None:
        """Machines no longer referenced anywhere need no loss time."""
        used = {machine for machine, _ in self.schedule}
        for machine in [m for m in self.lost if m not in used or m in self.machines]:
            del self.lost[machine]


class Collection:
    """Applies one prefix's mirror output to the model; ``on_change`` fires on any change."""

    def __init__(
        self,
        store: Store,
        prefix: str,
        put: Callable[[str, bytes], None],
        delete: Callable[[str], None],
        clear: Callable[[], None],
        own_writes: Callable[[], int] | None = None,
    ) -> None:
        """``own_writes`` returns the revision of the engine's last write to this prefix:
        events up to it are echoes already applied (schedule and placement only)."""
        self.store = store
        self.prefix = prefix
        self._put = put
        self._delete = delete
        self._clear = clear
        self._own_writes = own_writes
        self.revision = 0
        self.loaded = False

    def apply(self, item: Snapshot | Changes) -> bool:
        """Apply a mirror item; True if the model changed."""
        if isinstance(item, Snapshot):
            self._clear()
            for key, kv in item.items.items():
                self._safe(self._put, key, kv.value)
            self.revision = item.revision
            self.loaded = True
            return True
        skip_to = max(self.revision, self._own_writes() if self._own_writes else 0)
        changed = False
        for event in item.events:
            if event.mod_revision <= skip_to:
                continue
            changed = True
            if event.type is EventType.DELETE:
                self._safe(self._delete, event.key)
            else:
                self._safe(self._put, event.key, event.value)
        self.revision = max(self.revision, item.revision)
        return changed

    def _safe(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except (FleetError, ValueError, KeyError) as exc:
            log.error("engine: ignoring %s: %s", args[0], exc)


Parsed = dict[tuple[str, str], tuple[Requirements, str]]
"""Parsed requirements (or the parse error) by (hash, name or type): parsing is the
costly part of loading the model."""


def collections_for(
    model: ClusterModel,
    store: Store,
    defaults: ReservationDefaults,
    now: Callable[[], float],
    own_writes: Callable[[], int],
    parsed: Parsed,
) -> list[Collection]:
    """The five mirrors the engine keeps, wired to ``model``."""
    keys = store.keys

    def put_unit(key: str, value: bytes) -> None:
        unit = store.unit_from(key, value)
        # Without specifiers (%n %i ...) the requirements depend only on the file and the
        # unit type (reservation defaults), so instances of one template parse once.  The
        # types that cannot be templates have rules tying the name to the file (mount).
        suffix = unit.name.rpartition(".")[2]
        by_type = "%" not in unit.text and suffix in TEMPLATE_TYPES
        cache_key = (unit.hash, "." + suffix if by_type else unit.name)
        found = parsed.get(cache_key)
        if found is None:
            if len(parsed) > 2 * len(model.units) + 1024:
                parsed.clear()  # forget files no unit uses any more
            try:
                found = (parse_unit(unit.name, unit.text, defaults)[2], "")
            except FleetError as exc:
                found = (Requirements(), str(exc))
            parsed[cache_key] = found
        reqs, error = found
        model.set_unit(unit.name, UnitSpec(unit.name, unit.hash, unit.desired, reqs, error))

    def delete_unit(key: str) -> None:
        model.set_unit(key[len(keys.units) :], None)

    def clear_units() -> None:
        model.units.clear()
        model.stale = model.full = True

    def clear_machines() -> None:
        model.machines.clear()
        model.full = True
        model.fleet = None

    def clear_flags() -> None:
        model.flags.clear()
        model.full = True
        model.fleet = None

    def clear_schedule() -> None:
        model.schedule.clear()
        model.stale = model.full = True

    def clear_placements() -> None:
        model.placements.clear()
        model.full = True

    def put_machine(key: str, value: bytes) -> None:
        model.put_machine(store.machine_from(key, value))

    def delete_machine(key: str) -> None:
        model.drop_machine(key[len(keys.machines) :], now())

    def put_flags(key: str, value: bytes) -> None:
        model.set_flags(*store.flags_from(key, value))

    def delete_flags(key: str) -> None:
        model.set_flags(key[len(keys.machine_flags) :], None)

    def put_entry(key: str, value: bytes) -> None:
        entry = store.schedule_from(key, value)
        model.set_entry(entry.machine, entry.name, entry)
        model.full = True  # written by someone else than this engine

    def delete_entry(key: str) -> None:
        machine, name = keys.split(key, keys.schedule)
        model.set_entry(machine, name, None)
        model.full = True

    def put_placement(key: str, value: bytes) -> None:
        placement = store.placement_from(key, value)
        model.placements[placement.name] = placement
        model.full = True
        if placement.summary.startswith(STOPPING):  # a previous leader was moving it
            model.stopping.setdefault(placement.name, placement.summary[len(STOPPING) :])

    def delete_placement(key: str) -> None:
        model.placements.pop(key[len(keys.placements) :], None)
        model.full = True

    return [
        Collection(store, keys.units, put_unit, delete_unit, clear_units),
        Collection(store, keys.machines, put_machine, delete_machine, clear_machines),
        Collection(store, keys.machine_flags, put_flags, delete_flags, clear_flags),
        Collection(store, keys.schedule, put_entry, delete_entry, clear_schedule, own_writes),
        Collection(
            store, keys.placements, put_placement, delete_placement, clear_placements, own_writes
        ),
    ]
