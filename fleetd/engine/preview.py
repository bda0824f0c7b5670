"""What proposed unit changes would do to the schedule, without doing it (pure).

``preview(snap, proposed)`` runs the engine's own full ``plan()`` twice: on
the snapshot as it is (the base) and with the ``proposed`` units laid over
its units.  Each run goes to its end, as the engine gets there over several
passes: the tasks of a pass are applied to the snapshot and, while the pass
leaves something waiting for the machines (AtMostOnce units taken off a live
machine, start-first moves, moves held back by a disruption budget), the
result is planned again as if every machine had done its part: units taken
off a machine are stopped there, and every launched entry reports its unit
active and healthy with the entry's file.  Any other pass over the engine's
own result changes nothing.

A change is a schedule entry (unit, machine) whose final value differs from
today's and from the base's final value: what the engine would do because
of the proposal.  Entries the base changes too are ``pending``: the engine
makes them regardless (a drain in progress, a held unit about to move).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from fleetd.engine.plan import Action, ClusterSnapshot, Plan, Task, UnitSpec, plan
from fleetd.model import DesiredState, Health, Placement, ScheduleEntry, UnitState

MAX_PASSES = 8
"""A run stops after this many passes (each one after the first finishes what the one
before left to the machines; a chain of them is short)."""

_SCHEDULE_ACTIONS = (Action.SCHEDULE, Action.UNSCHEDULE, Action.UPDATE)


@dataclass(frozen=True, slots=True)
class Change:
    """One schedule entry the proposal changes: ``action`` is SCHEDULE (no entry
    before), UNSCHEDULE (none after) or UPDATE (hash or desired state)."""

    action: Action
    unit: str
    machine: str
    reason: str
    effect: str
    entry: ScheduleEntry | None
    previous: ScheduleEntry | None


@dataclass(frozen=True, slots=True)
class Unplaced:
    """A unit the engine would not place: why, and why not on each machine (a bounded
    sample, as placement reasons keep)."""

    unit: str
    reason: str
    rejections: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Preview:
    """``unplaceable``/``waiting``: proposed units, and other units the proposal leaves
    unplaced or waiting (AtMostOnce units waiting out a lost machine's grace).
    ``machines``: where each proposed unit ends up (empty: nowhere)."""

    changes: tuple[Change, ...]
    unplaceable: tuple[Unplaced, ...]
    waiting: Mapping[str, str]
    machines: Mapping[str, tuple[str, ...]]
    pending: int
    passes: int


@dataclass(frozen=True, slots=True)
class _End:
    """Where a run ends: the schedule, the reason of the last task on each entry, the
    last pass, the placement reasons."""

    schedule: Mapping[tuple[str, str], ScheduleEntry]
    reasons: Mapping[tuple[str, str], str]
    last: Plan
    placements: Mapping[str, Placement]
    passes: int


def preview(snap: ClusterSnapshot, proposed: Mapping[str, UnitSpec]) -> Preview:
    """The schedule changes that laying ``proposed`` over ``snap``'s units would bring."""
    base = _run(snap)
    end = _run(replace(snap, units={**snap.units, **proposed}))
    now = {(e.machine, e.name): e for e in snap.schedule}
    pending = sum(
        1 for key in now.keys() | base.schedule.keys() if now.get(key) != base.schedule.get(key)
    )
    changes: list[Change] = []
    for key in sorted(now.keys() | end.schedule.keys(), key=lambda k: (k[1], k[0])):
        before, after = now.get(key), end.schedule.get(key)
        if before == after or after == base.schedule.get(key):
            continue
        machine, unit = key
        action = (
            Action.SCHEDULE
            if before is None
            else Action.UNSCHEDULE
            if after is None
            else Action.UPDATE
        )
        reason = end.reasons.get((unit, machine), "")
        changes.append(Change(action, unit, machine, reason, effect(before, after), after, before))
    changes.sort(key=lambda c: c.action is not Action.UNSCHEDULE)  # unschedules first

    base_unplaced = set(base.last.decision.unplaceable)
    decision = end.last.decision
    unplaceable = tuple(
        Unplaced(name, reason, decision.rejections.get(name, ()))
        for name, reason in sorted(decision.unplaceable.items())
        if name in proposed or name not in base_unplaced
    )
    base_held = {*base.last.held, *base.last.decision.waiting}
    held = {n: end.placements[n].summary if n in end.placements else "" for n in end.last.held}
    waiting = {
        name: reason
        for name, reason in {**held, **end.last.decision.waiting}.items()
        if name in proposed or name not in base_held
    }
    machines: dict[str, list[str]] = {name: [] for name in proposed}
    for machine, unit in end.schedule:
        if unit in machines:
            machines[unit].append(machine)
    return Preview(
        tuple(changes),
        unplaceable,
        waiting,
        {name: tuple(sorted(found)) for name, found in machines.items()},
        pending,
        end.passes,
    )


def effect(before: ScheduleEntry | None, after: ScheduleEntry | None) -> str:
    """What the machine's agent does when its entry goes from ``before`` to ``after``."""
    if after is None:
        if before is None:
            return ""
        return "stop and unload" if before.desired is DesiredState.LAUNCHED else "unload"
    if before is None:
        return "load and start" if after.desired is DesiredState.LAUNCHED else "load"
    running = before.desired is DesiredState.LAUNCHED
    if before.hash != after.hash:
        if after.desired is DesiredState.LAUNCHED:
            return "restart with the new file" if running else "load the new file and start"
        return "stop, load the new file" if running else "load the new file"
    if before.desired is after.desired:
        return "none (only a start-first move's mark changes)"
    return "start" if after.desired is DesiredState.LAUNCHED else "stop"


def _run(snap: ClusterSnapshot) -> _End:
    schedule = {(e.machine, e.name): e for e in snap.schedule}
    placements = dict(snap.placements)
    reasons: dict[tuple[str, str], str] = {}
    passes = 0
    while True:
        result = plan(snap)
        passes += 1
        for task in result.tasks:
            _apply(task, schedule, placements, reasons)
        waits = result.stopping or snap.stopping or result.moving or result.decision.waiting
        progress = passes == 1 or any(t.action in _SCHEDULE_ACTIONS for t in result.tasks)
        if not waits or not progress or passes >= MAX_PASSES:
            return _End(schedule, reasons, result, placements, passes)
        # The machines did their part: what was taken off a machine (now or by an earlier
        # pass of the engine) stopped there, what is scheduled to run is up.
        snap = replace(
            snap,
            schedule=list(schedule.values()),
            placements=dict(placements),
            stopping={},
            states=_up(schedule.values()),
        )


def _up(entries: Iterable[ScheduleEntry]) -> dict[tuple[str, str], UnitState]:
    """Every launched entry's unit active and healthy with the entry's file."""
    return {
        (e.name, e.machine): UnitState(
            e.machine, e.name, e.hash, "loaded", "active", "running", health=Health.HEALTHY
        )
        for e in entries
        if e.desired is DesiredState.LAUNCHED
    }


def _apply(
    task: Task,
    schedule: dict[tuple[str, str], ScheduleEntry],
    placements: dict[str, Placement],
    reasons: dict[tuple[str, str], str],
) -> None:
    if task.action in _SCHEDULE_ACTIONS:
        reasons.setdefault((task.unit, task.machine), task.reason)  # why it began
    if task.action is Action.UNSCHEDULE:
        schedule.pop((task.machine, task.unit), None)
    elif task.entry is not None:
        schedule[(task.machine, task.unit)] = task.entry
    elif task.placement is not None:
        placements[task.unit] = task.placement
    elif task.action is Action.CLEAR:
        placements.pop(task.unit, None)
