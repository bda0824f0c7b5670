"""The engine's in-memory cluster model, and what it keeps for scoped passes.

The mirrors (engine/mirrors.py) feed it registry changes; the engine's own
writes are applied as soon as they succeed.  Each method that changes it
records the change in its ChangeLog (engine/changes.py), where a pass takes
what changed, or why it must plan everything.

For a full pass the model hands out a ClusterSnapshot (plain data, safe in
a worker thread).  For a scoped pass it keeps, across passes, a Ledger of
every unit and placement (engine/ledger.py) and machine slots carrying the
room of every placed unit (engine/slots.py), and hands out a Scope
(engine/scope.py): the snapshot of the units the change touches and the
Baseline they are planned against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from fleetd.engine.changes import Cause, Change, ChangeLog, FullReason
from fleetd.engine.guard import Guard
from fleetd.engine.index import Strategy
from fleetd.engine.ledger import Ledger, is_job
from fleetd.engine.plan import STOPPING, Action, ClusterSnapshot, Task, UnitSpec
from fleetd.engine.scope import Scope, scope
from fleetd.engine.slots import Slots
from fleetd.model import Machine, MachineFlags, Placement, ScheduleEntry, UnitState
from fleetd.requirements import Requirements

_FEW = 64
"""Up to this many changed machines (or a quarter of them) are updated in place."""
_MAX_CLASSES = 256
"""New kept slots get a capacity class for every metadata condition set units use
while there are at most this many; kept slots with more (built for scoped passes since)
are built anew, dropping those no unit uses any more."""


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
    # Entries marked as the new copy of a start-first move: (machine, unit) -> old machine
    marked: dict[tuple[str, str], str] = field(default_factory=dict)
    # Units asked to move (unit -> machine), by whoever drives the engine (maintenance)
    moves: dict[str, str] = field(default_factory=dict)
    # Units that are not Global with pinned machines (a rolling update moves them)
    pinned: set[str] = field(default_factory=set)
    # AtMostOnce units held out their grace period after their machine was lost -> until
    graced: dict[str, float] = field(default_factory=dict)
    changes: ChangeLog = field(default_factory=ChangeLog)
    # Kept for scoped passes; None: to be built (the ledger by a full pass, after a read).
    ledger: Ledger | None = None
    _slots: Slots | None = None

    # --- what a pass plans with ---

    def change(self) -> Change | FullReason:
        """What changed since the last call, or why the next pass must be full."""
        found = self.changes.take()
        if self.ledger is None and isinstance(found, Change):
            return FullReason(Cause.LOADED, "the ledger is rebuilt")
        return found

    def rebuild_ledger(self) -> None:
        """Recompute the ledger from the units and the schedule (after a read)."""
        self.ledger = Ledger.build(self.units, self.schedule)
        self._slots = None

    def snapshot(
        self,
        now: float,
        *,
        wall: float,
        grace: float,
        strategy: Strategy,
        drain_batch: int | None,
        states: Mapping[tuple[str, str], UnitState] | None = None,
        move_timeout: float = 0.0,
        guard: Guard | None = None,
    ) -> ClusterSnapshot:
        """An immutable copy to plan everything with (safe to hand to a worker thread).

        ``states``: what the machines report for the units ``state_machines`` names."""
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
            states=dict(states or {}),
            moves=dict(self.moves),
            move_timeout=move_timeout,
            guard=guard,
        )

    def absent(self, now: float, gone: Iterable[str] | None = None) -> dict[str, float]:
        """Machines with schedule entries that are not registered -> when seen gone
        (``gone``: the machines that left since the last pass, the others being in
        ``lost`` already; default: read from the whole schedule)."""
        return self._lost(now, gone)

    def state_machines(self) -> set[str]:
        """Machines whose unit states a pass needs (engine/plan.py, ``states``): the new
        machines of start-first moves; while a machine drains or units are asked to move,
        the machines of every unit with a disruption budget (engine/budget.py)."""
        needed = {machine for machine, _ in self.marked}
        if self.moves or any(f.draining for f in self.flags.values()):
            if self.ledger is not None:
                machines_of = self.ledger.machines_of
                for group in self.ledger.budgeted.values():
                    for unit in group:
                        needed.update(machines_of.get(unit, ()))
            else:
                budgeted = {
                    n
                    for n, spec in self.units.items()
                    if spec.requirements.max_unavailable is not None
                }
                needed.update(m for m, unit in self.schedule if unit in budgeted)
        return {m for m in needed if m in self.machines}

    def scope(
        self,
        change: Change,
        now: float,
        *,
        wall: float,
        grace: float,
        strategy: Strategy,
        drain_batch: int | None = None,
        states: Mapping[tuple[str, str], UnitState] | None = None,
        move_timeout: float = 0.0,
        guard: Guard | None = None,
    ) -> Scope | FullReason:
        """The scoped pass that reacts to ``change``, or why a full pass should instead.

        Units that are not settled are planned in every pass, whatever changed, as a
        full pass would plan them (``unsettled``); ``drain_batch``, ``states``,
        ``move_timeout`` and ``guard`` are as in ``snapshot``.  Its baseline is made of what
        the model keeps: plan it before the model changes."""
        if self.ledger is None:
            return FullReason(Cause.LOADED, "the ledger is rebuilt")
        units, draining = self.unsettled()
        if units or draining:
            change = replace(
                change, units=change.units | units, machines=change.machines | draining
            )
        slots = self.kept_slots(strategy)
        found = scope(
            self.ledger,
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
            slots=slots,
            states=states,
            asked=self.moves,
            drain_batch=drain_batch,
            move_timeout=move_timeout,
            guard=guard,
        )
        if isinstance(found, Scope):
            # Capacity classes the pass will search are built (and then kept) here.
            for conditions in {s.requirements.metadata for s in found.snapshot.units.values()}:
                slots.index.prepare(conditions)
        return found

    def unsettled(self) -> tuple[frozenset[str], frozenset[str]]:
        """What a full pass may move although nothing changed (units, draining machines):
        units in a start-first move (their new copy may be up), asked to move, or whose new
        version starts first away from where they run (a rolling update), and the units of
        draining machines (a drain batch may be due, room may have freed elsewhere).  A
        scoped pass plans them all; they are few (a drain, a rollout's batch)."""
        units = {unit for _, unit in self.marked}
        units.update(self.moves)
        assert self.ledger is not None
        machines_of = self.ledger.machines_of
        for unit in self.pinned:
            away = {m for m, _ in self.units[unit].pinned}
            if not away.isdisjoint(machines_of.get(unit, ())):
                units.add(unit)
        draining = frozenset(m for m, f in self.flags.items() if f.draining)
        return frozenset(units), draining

    def kept_slots(self, strategy: Strategy) -> Slots:
        """The machine slots kept across scoped passes, brought up to date: per machine
        that changed since the last call, or built anew (after a join, a read, a change
        of strategy, or when most machines changed, e.g. after a full pass)."""
        assert self.ledger is not None, "a full pass builds the ledger first"
        changed = self.changes.take_slots()
        load = self.ledger.load
        slots = self._slots
        # Spread leaves machines without room for the smallest job out of its lists, as
        # a full pass does: kept slots are built for the same smallest job.
        floor = self.ledger.floor if strategy is Strategy.SPREAD else (0, 0)
        if (
            slots is not None
            and slots.strategy is strategy
            and slots.index.floor == floor
            and (len(changed) <= _FEW or len(changed) <= len(self.machines) // 4)
            and len(slots.index.classes) <= _MAX_CLASSES
            and all(
                slots.update(m, self.machines.get(m), self.flags.get(m), load.get(m))
                for m in changed
            )
        ):
            return slots
        slots = self._slots = Slots(self.machines.values(), self.flags, load, strategy, floor)
        if len(self.ledger.conditions) <= _MAX_CLASSES:
            for conditions in self.ledger.conditions:  # every condition set units use
                slots.index.prepare(conditions)
        return slots

    def _lost(self, now: float, used: Iterable[str] | None = None) -> dict[str, float]:
        """Loss times of machines that still have schedule entries (``used``: those
        machines, or some of them; default: read from the schedule)."""
        for machine in (m for m, _ in self.schedule) if used is None else used:
            if machine not in self.machines:
                self.lost.setdefault(machine, now)
        return dict(self.lost)

    # --- changes ---

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

    def room_freed(self, machines: Iterable[str]) -> bool:
        """A pass applied left room on ``machines`` (``Plan.freed``) that units waiting
        for room may have been turned down for in it: whether the next (scoped) pass
        should offer it to them, and the ChangeLog has it (only live machines, and only
        while units wait for room or Global units may be missing)."""
        live = {m for m in machines if m in self.machines}
        if not live or not (self.placements or (self.ledger is not None and self.ledger.globals)):
            return False
        self.changes.freed(live)
        return True

    def set_entry(self, machine: str, unit: str, entry: ScheduleEntry | None) -> None:
        """Put (or with None, drop) one schedule entry."""
        if entry is None:
            if self.schedule.pop((machine, unit), None) is None:
                return
            self.marked.pop((machine, unit), None)
        else:
            self.schedule[(machine, unit)] = entry
            if entry.moving_from:
                self.marked[(machine, unit)] = entry.moving_from
            else:
                self.marked.pop((machine, unit), None)
        if self.ledger is not None:
            self.ledger.set_entry(machine, unit, self.units.get(unit), entry is not None)
            self.changes.slot(machine)

    def set_unit(self, name: str, spec: UnitSpec | None) -> None:
        """Put (or with None, drop) one unit."""
        old = self.units.get(name)
        if old == spec:
            return
        if spec is None:
            del self.units[name]
        else:
            self.units[name] = spec
        self.changes.unit(name)
        if spec is not None and spec.pinned and not spec.requirements.global_:
            self.pinned.add(name)  # a rolling update's start-first move (see ``unsettled``)
        else:
            self.pinned.discard(name)
        if self.ledger is None:
            return  # a full pass is due (the read that dropped the ledger asked for it)
        where = self.ledger.machines_of.get(name, ())
        self.ledger.set_unit(name, old, spec)
        if where and old is not None and spec is not None and old.requirements != spec.requirements:
            # Where it runs, new requirements may push out others (room, conflicts).
            self.changes.units_changed_on(self._pushed(old.requirements, spec.requirements, where))
        if where and _room(old) != _room(spec):
            self.changes.slots(where)

    def _pushed(self, old: Requirements, new: Requirements, where: Iterable[str]) -> list[str]:
        """The machines of ``where`` on which a unit whose requirements went from ``old``
        to ``new`` may push others out: every one if its globs or kind changed, else
        those it overfills now (a full pass keeps the units of a machine in one order, so
        while their room fits, every one of them stays)."""
        if (old.conflicts, old.replaces, old.global_) != (new.conflicts, new.replaces, new.global_):
            return list(where)
        if new.cpu_millis <= old.cpu_millis and new.memory_bytes <= old.memory_bytes:
            return []
        assert self.ledger is not None
        load, machines = self.ledger.load, self.machines
        found = []
        for machine in where:
            live, used = machines.get(machine), load.get(machine)
            if live is None or used is None:
                continue
            capacity = live.capacity
            if used[0] > capacity.cpu_millis or used[1] > capacity.memory_bytes:
                found.append(machine)
        return found

    def put_machine(self, machine: Machine) -> None:
        old = self.machines.get(machine.id)
        if old is None or _placing(old) != _placing(machine):
            self.changes.machine(machine.id)  # units waiting may go there, others leave
        self.machines[machine.id] = machine
        self.lost.pop(machine.id, None)

    def drop_machine(self, machine: str, now: float) -> None:
        if self.machines.pop(machine, None) is not None:
            self.lost[machine] = now
            self.changes.left(machine)

    def set_flags(self, machine: str, flags: MachineFlags | None) -> None:
        """Put (or with None, drop) a machine's flags."""
        old = self.flags.pop(machine, None)
        if flags is not None:
            self.flags[machine] = flags
        if old == flags:
            return
        self.changes.machine(machine)

    def foreign_entry(self, machine: str, unit: str, entry: ScheduleEntry | None) -> None:
        """``set_entry`` for an entry written by another process than this engine."""
        self.set_entry(machine, unit, entry)
        self.changes.full(Cause.FOREIGN_WRITE, f"schedule entry of {unit} on {machine}")

    def foreign_placement(self, name: str, placement: Placement | None) -> None:
        """Put (or with None, drop) a placement reason written by another process."""
        if placement is None:
            self.placements.pop(name, None)
        else:
            self.placements[name] = placement
            if placement.summary.startswith(STOPPING):  # a previous leader was moving it
                self.stopping.setdefault(name, placement.summary[len(STOPPING) :])
        self.changes.full(Cause.FOREIGN_WRITE, f"placement reason of {name}")

    def request_moves(self, moves: Mapping[str, str]) -> bool:
        """Units asked to move (unit -> machine), replacing the previous requests: each
        unit whose request came, went or changed is planned again.  Whether any did."""
        if dict(moves) == self.moves:
            return False
        for unit in {*moves, *self.moves}:
            if moves.get(unit) != self.moves.get(unit):
                self.changes.unit(unit)
        self.moves = dict(moves)
        return True

    def stopping_begins(self, pairs: Iterable[tuple[str, str]]) -> None:
        """AtMostOnce units a pass took off a live machine (unit, machine): not placed
        until seen stopped there.  Their MachineOf followers are planned again (a pass that
        sees the unit held finds them without a peer)."""
        for unit, machine in pairs:
            self.stopping[unit] = machine
            if self.ledger is not None:
                for follower in self.ledger.followers.get(unit, ()):
                    self.changes.unit(follower)

    def grace(self, planned: Iterable[str] | None, graced: Iterable[tuple[str, float]]) -> None:
        """What a pass found of AtMostOnce units held out their grace period: ``graced``
        (unit, until) among the units it ``planned`` (None: all of them, a full pass)."""
        if planned is None:
            self.graced.clear()
        else:
            for unit in planned:
                self.graced.pop(unit, None)
        self.graced.update(graced)

    @property
    def grace_ends(self) -> float | None:
        """When the first grace period of a held AtMostOnce unit ends (None: none held)."""
        return min(self.graced.values(), default=None)

    def graced_out(self, now: float) -> bool:
        """Held AtMostOnce units whose grace period ended by ``now`` are placed: a change of
        each (a scoped pass plans them).  Whether there were any."""
        ended = [u for u, until in self.graced.items() if until <= now]
        for unit in ended:
            del self.graced[unit]
            self.changes.unit(unit)
        return bool(ended)

    def stopped(self, unit: str) -> None:
        """An AtMostOnce unit was seen stopped on the machine it left: place it again."""
        if self.stopping.pop(unit, None) is not None:
            self.changes.unit(unit)

    def forget_machines(self) -> None:
        """Machines no longer referenced anywhere need no loss time."""
        if not self.lost:
            return  # after most passes: no look at the schedule (100,000 entries and more)
        if self.ledger is not None:  # it knows the entries of every machine
            units_on = self.ledger.units_on
            forget = [m for m in self.lost if m in self.machines or not units_on.get(m)]
        else:
            used = {machine for machine, _ in self.schedule}
            forget = [m for m in self.lost if m not in used or m in self.machines]
        for machine in forget:
            del self.lost[machine]

    # --- a mirror read a whole prefix again ---

    def clear_units(self) -> None:
        self.units.clear()
        self.pinned.clear()
        self._drop_kept("units")

    def clear_schedule(self) -> None:
        self.schedule.clear()
        self.marked.clear()
        self._drop_kept("schedule")

    def clear_machines(self) -> None:
        self.machines.clear()
        self._slots = None
        self.changes.full(Cause.LOADED, "machines read")

    def clear_flags(self) -> None:
        self.flags.clear()
        self._slots = None
        self.changes.full(Cause.LOADED, "machine flags read")

    def clear_placements(self) -> None:
        self.placements.clear()
        self.changes.full(Cause.LOADED, "placement reasons read")

    def _drop_kept(self, what: str) -> None:
        self.ledger = self._slots = None  # rebuilt once the read is complete
        self.changes.full(Cause.LOADED, f"{what} read")


def _room(spec: UnitSpec | None) -> tuple[int, int] | None:
    """What of a unit its machines' slots count (None: nothing, it is no job)."""
    if not is_job(spec):
        return None
    assert spec is not None
    return (spec.requirements.cpu_millis, spec.requirements.memory_bytes)


def _placing(machine: Machine) -> tuple[object, ...]:
    """What of a machine its slot is made of (the rest does not change any pass)."""
    return (machine.metadata, machine.capacity, machine.systemd_connected)
