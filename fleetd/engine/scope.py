"""Incremental reconcile: plan only the units a change touches (pure).

A full ``plan()`` visits every unit; reacting to one change that way costs a
second and more with 100,000 units.  The ``Ledger`` (engine/ledger.py)
keeps, across passes, what a scoped pass needs to know about everything
else: which machines each unit is scheduled on, the (cpu, mem, units) every
machine carries, MachineOf followers, the units that declare or match each
``Conflicts=`` glob and where those placed are.

``scope()`` turns a Change (changed units, machines that left) into a Scope:
a ClusterSnapshot of only the units that may move (with Conflicts partners
that wait for room), and the Baseline they are planned against
(engine/baseline.py): the machine slots the model keeps (engine/slots.py,
carrying the room of every placed unit) less the room of these units, the
MachineOf peers the checks must see, and the kept ``Conflicts=`` relation.
No part of it costs work per machine; ``plan()`` of the snapshot over the
baseline then decides exactly as a full pass would for those units.  When a
change is better left to a full pass (a scope larger than ``limit``) it
returns why instead.  A unit with ``Replaces=`` and the units it replaces
are planned together (where one is placed anew it evicts the other), and the
machines such evictions may free are offered to the units waiting for room.

Reasons of unplaceable units outside the scope are not refreshed (their
text may name free capacity that changed); the periodic full pass does that.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from fleetd.engine.baseline import Baseline
from fleetd.engine.budget import Member, group_of
from fleetd.engine.changes import Cause, Change, FullReason
from fleetd.engine.guard import Guard
from fleetd.engine.ledger import Ledger, is_job
from fleetd.engine.plan import Action, ClusterSnapshot, Plan, Task, UnitSpec, plan
from fleetd.engine.slot import Conditions, Slot
from fleetd.engine.slots import Load, Slots
from fleetd.model import Machine, MachineFlags, Placement, ScheduleEntry, UnitState
from fleetd.requirements import Requirements

SCOPE_LIMIT = 2000
"""A change touching more units than this is planned by a full pass."""


@dataclass(frozen=True, slots=True)
class Scope:
    """A scoped pass: the snapshot of its units, what they are planned against, and the
    writes decided without the scheduler."""

    snapshot: ClusterSnapshot
    baseline: Baseline
    unschedule: tuple[Task, ...] = ()
    units: frozenset[str] = field(default_factory=frozenset)
    guarded: tuple[str, ...] = ()  # Global units the mass-loss guard keeps on gone machines


def scope(
    ledger: Ledger,
    change: Change,
    *,
    units: Mapping[str, UnitSpec],
    machines: Mapping[str, Machine],
    schedule: Mapping[tuple[str, str], ScheduleEntry],
    flags: Mapping[str, MachineFlags],
    placements: Mapping[str, Placement],
    lost: Mapping[str, float],
    stopping: Mapping[str, str],
    now: float,
    wall: float,
    grace: float,
    slots: Slots,
    limit: int = SCOPE_LIMIT,
    states: Mapping[tuple[str, str], UnitState] | None = None,
    asked: Mapping[str, str] | None = None,
    drain_batch: int | None = None,
    move_timeout: float = 0.0,
    guard: Guard | None = None,
) -> Scope | FullReason:
    """The pass that reacts to ``change``, or why a full pass should instead.

    ``slots``: the slots kept across passes, up to date with ``machines``, ``flags``
    and ``ledger.load`` (see ClusterModel.scope); the pass uses their strategy.
    ``states``, ``asked`` (``moves``), ``drain_batch``, ``move_timeout``: as in
    ClusterSnapshot (the change names every unit they concern that may move: see
    ClusterModel.scope).  ``guard``: the mass-loss guard (as in ClusterSnapshot; the
    engine plans everything when it starts or its reason changes, so that every unit it
    holds says why)."""
    holding = guard if guard is not None and now < guard.until else None

    def on_live_machine(unit: str) -> bool:
        return any(m in machines for m in ledger.machines_of.get(unit, ()))

    moving: list[str] = list(change.units)
    unschedule: list[Task] = []
    guarded: set[str] = set()
    for machine in sorted(change.gone):
        for unit in sorted(ledger.units_on.get(machine, ())):
            spec = units.get(unit)
            global_ = spec is not None and spec.requirements.global_
            if unit not in change.units and global_ and on_live_machine(unit):
                # A Global unit just loses that machine: nothing else of it changes (or,
                # while the guard holds, its copy there stays, as in a full pass).
                if holding is not None and is_job(spec):
                    guarded.add(unit)
                    continue
                why = f"machine {machine} is gone"
                unschedule.append(Task(Action.UNSCHEDULE, unit, why, machine))
            else:
                moving.append(unit)
    # Machines that joined or changed: their units are checked again where they run.
    changed = sorted(m for m in change.machines if m in machines)
    confined: dict[str, set[str]] = {}
    for machine in changed:
        for unit in ledger.units_on.get(machine, ()):
            if unit in ledger.globals:
                confined.setdefault(unit, set()).add(machine)
            else:
                moving.append(unit)
    offered: set[str] = set()

    def offer(freed: set[str]) -> None:
        """Room may free up on ``freed``: units waiting for room that may run there, and
        Global units missing on such a machine, get another chance (as in a full pass)."""
        freed -= offered
        if not freed:
            return
        offered.update(freed)
        room = _Offered([slots.by_id[m] for m in sorted(freed) if m in slots.by_id], ledger, slots)
        moving.extend(w for w in placements if room.may_use(units.get(w)))
        for unit in ledger.globals:
            missing = [m for m in freed if unit not in ledger.units_on.get(m, ())]
            if missing:
                confined.setdefault(unit, set()).update(missing)

    freed = {m for u in change.units for m in ledger.machines_of.get(u, ()) if m in machines}
    freed.update(changed)
    # Room the last pass's own writes freed, maybe after a waiting unit's turn.
    freed.update(m for m in change.freed if m in machines)
    offer(freed)

    # Units that may be jobs on no live machine: the waiting (each has a placement
    # reason), those on machines that are gone, and those the change names.
    unplaced = set(placements)
    unplaced.update(change.units)
    for machine in lost:
        unplaced.update(ledger.units_on.get(machine, ()))
    included: set[str] = set()
    moves: set[str] = set()
    evicting: set[str] = set()  # machines where a Replaces= unit of the pass may evict
    while True:
        if not moving:
            # A unit the pass moves may evict another (Replaces=): room may free up where
            # those run.  Global units that cannot be planned on a few machines only are
            # planned everywhere.
            offer(evicting)
            unconfined = [
                u
                for u, on in confined.items()
                if not _confinable(u, on, units, machines, change, ledger)
            ]
            for unit in unconfined:
                del confined[unit]
            moving.extend(unconfined)
            if not moving:
                break
        unit = moving.pop()
        if unit in moves:
            continue
        moves.add(unit)
        included.add(unit)
        spec = units.get(unit)
        # Units it replaces (Replaces=) or that replace it move with it: where one is
        # placed anew it evicts the other.
        for other in ledger.replacement(unit, spec):
            if is_job(units.get(other)):
                moving.append(other)
                evicting.update(m for m in ledger.machines_of.get(other, ()) if m in machines)
        # Followers move with it; peers stay but their placement is checked.  Conflicts
        # partners that wait may find room where it was; placed ones are seen through
        # ``ledger.conflicts``.
        moving.extend(ledger.followers.get(unit, ()))
        for other in ledger.related_among(unit, spec, unplaced):
            if other not in moves and is_job(units.get(other)) and not on_live_machine(other):
                moving.append(other)
        peers = list(spec.requirements.machine_of) if spec is not None else []
        while peers:
            other = peers.pop()
            if other in included:
                continue
            other_spec = units.get(other)
            if is_job(other_spec) and not on_live_machine(other):
                moving.append(other)  # it may be placed in this pass: check it fully
                continue
            included.add(other)
            if other_spec is not None:
                peers.extend(other_spec.requirements.machine_of)
        if len(included) > limit:
            return FullReason(Cause.NOT_SCOPED, f"the change touches over {limit} units")

    # Placed peers that do not move are only looked at (where they are): their room
    # stays counted in the kept slots.
    staying: dict[str, tuple[Requirements, tuple[str, ...]]] = {}
    for unit in included - moves:
        spec = units.get(unit)
        if spec is not None and is_job(spec):
            at = tuple(m for m in ledger.machines_of.get(unit, ()) if m in machines)
            staying[unit] = (spec.requirements, at)
    planned = [u for u in included if u not in staying]
    only = {u: frozenset(m) for u, m in confined.items() if u not in included}
    planned.extend(only)
    entries: list[ScheduleEntry] = []
    give_back: dict[str, Load] = {}
    counted: dict[str, set[str]] = {}
    for unit in planned:
        global_ = unit in ledger.globals
        where = ledger.machines_of.get(unit, set())
        if unit in only:  # a Global unit runs on thousands of machines: those planned
            where = where & only[unit]
        for machine in where:
            entries.append(schedule[(machine, unit)])
            room = ledger.counted(machine, unit)
            slot = slots.by_id.get(machine) if global_ and room is not None else None
            if slot is not None and slot.free_cpu >= 0 and slot.free_mem >= 0:
                # A Global unit runs on thousands of machines: where it fits, its room
                # stays counted (the pass checks it there without taking it again).
                counted.setdefault(unit, set()).add(machine)
            elif room is not None:
                cpu, mem, count = give_back.get(machine, (0, 0, 0))
                give_back[machine] = (cpu + room[0], mem + room[1], count + 1)
    snap = ClusterSnapshot(
        units={u: units[u] for u in planned if u in units},
        machines=machines,
        schedule=entries,
        flags=flags,
        placements={u: placements[u] for u in planned if u in placements},
        lost=lost,
        now=now,
        wall=wall,
        at_most_once_grace=grace,
        strategy=slots.strategy,
        drain_batch=drain_batch,
        # AtMostOnce units not yet seen stopped where they were are held, as in a full pass.
        stopping={u: stopping[u] for u in planned if u in stopping},
        states=states or {},
        moves=asked or {},
        move_timeout=move_timeout,
        guard=holding,
    )
    members = _members(planned, units, ledger)
    baseline = Baseline(slots, give_back, staying, ledger.conflicts, only, counted, members)
    if holding is not None:  # Global units planned on a few machines keep the rest
        guarded.update(u for u in only if any(m not in machines for m in ledger.machines_of[u]))
    kept = tuple(sorted(guarded - set(planned) | guarded & set(only)))
    return Scope(snap, baseline, tuple(unschedule), frozenset(planned), kept)


def _members(
    planned: list[str], units: Mapping[str, UnitSpec], ledger: Ledger
) -> tuple[Member, ...]:
    """Every unit of the disruption budget groups of the ``planned`` units, as a budget
    counts them (engine/budget.py)."""
    groups = {
        group_of(u)
        for u in planned
        if (spec := units.get(u)) is not None and spec.requirements.max_unavailable is not None
    }
    found = []
    for group in sorted(groups):
        for name in sorted(ledger.budgeted.get(group, ())):
            spec = units[name]
            if not spec.error:
                where = tuple(sorted(ledger.machines_of.get(name, ())))
                found.append(Member(name, spec.hash, spec.desired, spec.requirements, where))
    return tuple(found)


def _confinable(
    unit: str,
    only: set[str],
    units: Mapping[str, UnitSpec],
    machines: Mapping[str, Machine],
    change: Change,
    ledger: Ledger,
) -> bool:
    """Whether a scoped pass may plan the Global ``unit`` on the machines ``only``: it
    runs on another live machine too, and it relates to no unit by glob or MachineOf
    (their checks would need to see all of it)."""
    spec = units.get(unit)
    if spec is None or unit in change.units or not is_job(spec):
        return False
    req = spec.requirements
    return (
        not (req.machine_of or req.conflicts or ledger.followers.get(unit))
        and req.max_unavailable is None
        and unit not in ledger.replacing
        and not ledger.replaced(unit)
        and not ledger.related(unit, spec)
        and any(m in machines and m not in only for m in ledger.machines_of.get(unit, ()))
    )


class _Offered:
    """Slots where room may free up, and whether a waiting unit may be placed on one of
    them by what does not change with room: metadata, MachineID, flags, where its
    MachineOf peers are.  The other waiting units have no more room anywhere than before
    (steady), so no pass would place them now."""

    def __init__(self, where: list[Slot], ledger: Ledger, slots: Slots) -> None:
        self.where = where
        self.ledger = ledger
        self.slots = slots
        self.ids = {slot.id for slot in where}
        self._usable: dict[Conditions, list[str]] = {}  # by metadata conditions

    def may_use(self, spec: UnitSpec | None) -> bool:
        if spec is None or not is_job(spec):
            return True  # its reason is cleared or kept: cheap either way
        req = spec.requirements
        if req.machine_of:
            machines_of, live = self.ledger.machines_of, self.slots.by_id.keys()
            return any(
                not (machines_of.get(peer, set()) & live) or machines_of.get(peer, set()) & self.ids
                for peer in req.machine_of
            )
        usable = self._usable.get(req.metadata)
        if usable is None:  # waiting units share a few condition sets: once per set
            reason = self.slots.groups.reason
            usable = [s.id for s in self.where if s.schedulable and reason(req.metadata, s) is None]
            self._usable[req.metadata] = usable = sorted(usable)
        pin = req.machine_id
        if pin is None:
            return bool(usable)
        at = bisect_left(usable, pin)  # ids that start with the pin sort from there
        return at < len(usable) and usable[at].startswith(pin)


def plan_scope(found: Scope) -> Plan:
    """``plan()`` of the scoped snapshot over its baseline, the scope's own unschedules
    first, and the units the mass-loss guard keeps among its ``guarded``."""
    result = plan(found.snapshot, found.baseline)
    if found.unschedule:
        result = replace(result, tasks=(*found.unschedule, *result.tasks))
    guard = found.snapshot.guard
    if found.guarded and guard is not None:
        guarded = tuple(sorted({*result.guarded, *found.guarded}))
        result = replace(result, guarded=guarded, guard_until=guard.until)
    return result
