"""Incremental reconcile: plan only the units a change touches (pure).

A full ``plan()`` visits every unit; reacting to one change that way costs a
second and more with 100,000 units.  ``ScopeIndex`` (engine/placements.py)
keeps, across passes, what a scoped pass needs to know about everything
else: which machines each unit is scheduled on, the (cpu, mem, units) every
machine carries, MachineOf followers, the units that declare or match each
``Conflicts=`` glob and where those placed are.

``scope()`` turns a set of changed units and lost machines into a
ClusterSnapshot holding only the units that may move (with Conflicts
partners that wait for room), plus the MachineOf peers the checks need to
see; placed Conflicts partners are seen through ``ScopeIndex.conflicts``.
The scheduler plans them on the machine slots the model keeps
(engine/fleet.py, carrying the room of every placed unit) minus the room of
these units, so no part of it costs work per machine; ``plan()`` of that
snapshot then decides exactly as a full pass would for those units.  It returns None
when a change is better left to a full pass: drains, AtMostOnce units being
stopped, ``Replaces=``, or a scope larger than ``limit``.

Reasons of unplaceable units outside the scope are not refreshed (their
text may name free capacity that changed); the periodic full pass does that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetd.engine.index import Slot
from fleetd.engine.placements import ScopeIndex, counts
from fleetd.engine.plan import Action, ClusterSnapshot, Plan, Task, UnitSpec, plan
from fleetd.engine.scheduler import Fleet, Load, Strategy
from fleetd.model import Machine, MachineFlags, Placement, ScheduleEntry
from fleetd.requirements import Requirements

SCOPE_LIMIT = 2000
"""A change touching more units than this is planned by a full pass."""


@dataclass(frozen=True, slots=True)
class Change:
    """What happened since the last pass: units whose spec changed (or vanished) and
    machines that left."""

    units: frozenset[str] = frozenset()
    gone: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Scope:
    """A scoped snapshot plus the writes decided without the scheduler."""

    snapshot: ClusterSnapshot
    unschedule: tuple[Task, ...] = ()
    units: frozenset[str] = field(default_factory=frozenset)


def scope(
    index: ScopeIndex,
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
    strategy: Strategy,
    fleet: Fleet,
    limit: int = SCOPE_LIMIT,
) -> Scope | None:
    """The snapshot a pass needs to react to ``change``, or None for a full pass.

    ``fleet``: the fleet kept across passes, up to date with ``machines``, ``flags``
    and ``index.load`` (see ClusterModel.scope); ``strategy`` must be its own."""
    if stopping or any(f.draining for f in flags.values()):
        return None

    def placed(unit: str) -> bool:
        return any(m in machines for m in index.machines_of.get(unit, ()))

    moving: list[str] = list(change.units)
    unschedule: list[Task] = []
    for machine in sorted(change.gone):
        for unit in sorted(index.units_on.get(machine, ())):
            spec = units.get(unit)
            global_ = spec is not None and spec.requirements.global_
            if unit not in change.units and global_ and placed(unit):
                # A Global unit just loses that machine: nothing else of it changes.
                why = f"machine {machine} is gone"
                unschedule.append(Task(Action.UNSCHEDULE, unit, why, machine))
            else:
                moving.append(unit)
    freed = [m for u in change.units for m in index.machines_of.get(u, ()) if m in machines]
    if freed:
        # Room may free up there: units waiting for room that may run there, and Global
        # units missing on such a machine, get another chance (as in a full pass).
        slots = [fleet.slots[m] for m in set(freed) if m in fleet.slots]
        moving.extend(w for w in placements if _may_use(units.get(w), slots, index, fleet))
        for unit in index.globals:
            if any(unit not in index.units_on.get(m, ()) for m in freed):
                moving.append(unit)

    included: set[str] = set()
    moves: set[str] = set()
    while moving:
        unit = moving.pop()
        if unit in moves:
            continue
        moves.add(unit)
        included.add(unit)
        spec = units.get(unit)
        if unit in index.replacing or index.replaced(unit):
            return None
        # Followers move with it; peers stay but their placement is checked.  Conflicts
        # partners that wait may find room where it was; placed ones are seen through
        # ``index.conflicts``.
        moving.extend(index.followers.get(unit, ()))
        for other in index.related(unit, spec):
            if other not in moves and counts(units.get(other)) and not placed(other):
                moving.append(other)
        peers = list(spec.requirements.machine_of) if spec is not None else []
        while peers:
            other = peers.pop()
            if other in included:
                continue
            other_spec = units.get(other)
            if counts(other_spec) and not placed(other):
                moving.append(other)  # it may be placed in this pass: check it fully
                continue
            included.add(other)
            if other_spec is not None:
                peers.extend(other_spec.requirements.machine_of)
        if len(included) > limit:
            return None

    # Placed peers that do not move are only looked at (where they are): their room
    # stays counted in the kept fleet.
    fixed: dict[str, tuple[Requirements, tuple[str, ...]]] = {}
    for unit in included - moves:
        spec = units.get(unit)
        if spec is not None and counts(spec):
            where = tuple(m for m in index.machines_of.get(unit, ()) if m in machines)
            fixed[unit] = (spec.requirements, where)
    planned = [u for u in included if u not in fixed]
    entries: list[ScheduleEntry] = []
    minus: dict[str, Load] = {}
    for unit in planned:
        for machine in index.machines_of.get(unit, ()):
            entries.append(schedule[(machine, unit)])
            room = index.counted(machine, unit)
            if room is not None:
                cpu, mem, count = minus.get(machine, (0, 0, 0))
                minus[machine] = (cpu + room[0], mem + room[1], count + 1)
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
        strategy=strategy,
        drain_batch=None,
        kept=fleet,
        minus=minus,
        fixed=fixed,
        placed=index.conflicts,
    )
    return Scope(snap, tuple(unschedule), frozenset(planned))


def _may_use(spec: UnitSpec | None, slots: list[Slot], index: ScopeIndex, fleet: Fleet) -> bool:
    """Whether a waiting unit may be placed on one of ``slots`` by what does not change
    with room: metadata, MachineID, flags, where its MachineOf peers are.  The other
    waiting units have no more room anywhere than before (steady), so no pass would
    place them now."""
    if spec is None or not counts(spec):
        return True  # its reason is cleared or kept: cheap either way
    req = spec.requirements
    if req.machine_of:
        ids = {slot.id for slot in slots}
        return any(
            not (index.machines_of.get(peer, set()) & fleet.slots.keys())
            or index.machines_of.get(peer, set()) & ids
            for peer in req.machine_of
        )
    return any(
        slot.schedulable
        and (req.machine_id is None or slot.id.startswith(req.machine_id))
        and fleet.groups.reason(req.metadata, slot) is None
        for slot in slots
    )


def plan_scope(found: Scope) -> Plan:
    """``plan()`` of the scoped snapshot, with the scope's own unschedules first."""
    result = plan(found.snapshot)
    if not found.unschedule:
        return result
    return Plan(
        (*found.unschedule, *result.tasks),
        result.decision,
        result.held,
        result.wake_at,
        result.stopping,
    )
