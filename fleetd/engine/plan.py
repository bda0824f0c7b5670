"""The engine's reconcile step: cluster snapshot -> ordered tasks with reasons (pure).

``plan()`` compares what should be scheduled (the scheduler's Decision for
every unit whose desired state is loaded or launched) with the schedule
entries that exist, and returns the writes that close the gap:

1. ``UNSCHEDULE`` entries first (machine gone, unit destroyed or inactive,
   draining, a constraint that now forbids it, replaced), so a unit that
   moves is removed from its old machine before it appears on the new one
   -- except a start-first move (engine/handover.py): a unit that is not
   ``AtMostOnce`` leaving a draining machine, or asked to move, is scheduled
   on its new machine first and unscheduled from the old one once it is up
   there;
2. ``SCHEDULE`` new entries and ``UPDATE`` entries whose hash or desired
   state changed (or whose start-first mark comes or goes);
3. ``RECORD``/``CLEAR`` placement reasons (``placement/<name>``).

Stop-first moves off a draining machine (``AtMostOnce`` units) take from their
group's disruption budget (``MaxUnavailable=``, engine/budget.py); a unit whose
budget is spent stays where it is for now and its placement reason says why.

AtMostOnce units whose machine was lost stay where they are until
``lost_at + grace``: the machine may still run them while its agent has not
noticed it is cut off.  While the mass-loss guard holds (engine/guard.py), no
unit leaves a machine that is absent: it may register again.  Time is an input
(``now``); nothing here reads a clock.

A full pass plans a snapshot of the whole model.  A scoped pass
(engine/scope.py) plans a snapshot of the few units a change touches, with
the Baseline they are planned against (engine/baseline.py: the rest of the
cluster as the engine keeps it), and decides for them what a full pass would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from fleetd.engine.baseline import Baseline
from fleetd.engine.budget import Budget, Member, budget
from fleetd.engine.decision import Decision, Job
from fleetd.engine.guard import Guard
from fleetd.engine.handover import Handover, finished, in_flight, late, move_of, waiting_reason
from fleetd.engine.index import Strategy
from fleetd.engine.scheduler import schedule
from fleetd.model import DesiredState, Machine, MachineFlags, Placement, ScheduleEntry, UnitState
from fleetd.requirements import Requirements

STOPPING = "AtMostOnce: waiting for it to stop on "
"""Placement reason of an AtMostOnce unit moving off a live machine, followed by that
machine's id; a new leader reads it back from ``placement/`` (see engine/model.py)."""


@dataclass(frozen=True, slots=True)
class UnitSpec:
    """A unit as the engine plans with it: desired state, hash and parsed requirements.

    ``error`` says why the stored file could not be parsed: such a unit is
    neither placed nor moved, and the error is recorded as its placement reason.
    ``pinned``: machines scheduled with another hash than ``hash`` (a Global unit's
    machines a rolling update has not moved yet; for any other unit, where its old copy
    runs while its new version starts first elsewhere: see fleetd.model.Unit).
    """

    name: str
    hash: str
    desired: DesiredState
    requirements: Requirements = field(default_factory=Requirements)
    error: str = ""
    pinned: tuple[tuple[str, str], ...] = ()

    def hash_on(self, machine: str) -> str:
        """The hash the unit's entry on ``machine`` carries."""
        if not self.pinned:
            return self.hash
        return next((h for m, h in self.pinned if m == machine), self.hash)


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """Everything one reconcile pass looks at (plain data).

    ``lost`` maps a machine that disappeared to the time it was seen gone; a
    schedule entry on a machine in neither ``machines`` nor ``lost`` counts as
    lost at ``now`` (the engine must carry loss times forward between passes).
    ``now`` is the engine's monotonic clock; ``wall`` (epoch seconds) only
    stamps new placement reasons.
    """

    units: Mapping[str, UnitSpec]
    machines: Mapping[str, Machine]
    schedule: Sequence[ScheduleEntry]
    flags: Mapping[str, MachineFlags] = field(default_factory=dict)
    placements: Mapping[str, Placement] = field(default_factory=dict)
    lost: Mapping[str, float] = field(default_factory=dict)
    now: float = 0.0
    wall: float = 0.0
    at_most_once_grace: float = 0.0
    strategy: Strategy = Strategy.BINPACK
    drain_batch: int | None = None
    stopping: Mapping[str, str] = field(default_factory=dict)
    """AtMostOnce units taken off a live machine and not yet seen stopped there
    (unit -> machine): they are not placed anywhere until then."""
    states: Mapping[tuple[str, str], UnitState] = field(default_factory=dict)
    """(unit, machine) -> what that machine reports, for the new copies of start-first
    moves and the units of groups with a disruption budget (others are not needed)."""
    moves: Mapping[str, str] = field(default_factory=dict)
    """unit -> the machine it is asked to move to (e.g. back after a maintenance)."""
    move_timeout: float = 0.0
    """Deadline of a start-first move, seconds of ``wall`` (0: none; engine/handover.py)."""
    guard: Guard | None = None
    """The mass-loss guard (engine/guard.py): until ``guard.until``, units on machines
    not in ``machines`` stay scheduled there."""


class Action(StrEnum):
    UNSCHEDULE = "unschedule"
    SCHEDULE = "schedule"
    UPDATE = "update"
    RECORD = "record"
    CLEAR = "clear"


class Task(NamedTuple):
    """One write: ``entry`` for SCHEDULE/UPDATE, ``placement`` for RECORD (a NamedTuple:
    a pass creates one per placement)."""

    action: Action
    unit: str
    reason: str
    machine: str = ""
    entry: ScheduleEntry | None = None
    placement: Placement | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """Tasks in the order they must be applied, plus what the engine reports and waits for.

    ``stopping``: AtMostOnce units this plan takes off a live machine (unit, machine):
    they are placed elsewhere only once they are seen stopped there.
    ``moving``: units in a start-first move once this plan is applied (the engine
    looks again soon whether they are up on their new machine).
    ``guarded``: units kept on absent machines by the mass-loss guard.
    ``graced``: AtMostOnce units held out their grace period, with when it ends (unit,
    time): a pass that plans them then places them (a scoped one will do).
    ``guard_until``: when the mass-loss guard that kept units here ends (None: none kept).
    """

    tasks: tuple[Task, ...]
    decision: Decision
    held: tuple[str, ...] = ()
    stopping: tuple[tuple[str, str], ...] = ()
    moving: tuple[str, ...] = ()
    guarded: tuple[str, ...] = ()
    graced: tuple[tuple[str, float], ...] = ()
    guard_until: float | None = None

    @property
    def wake_at(self) -> float | None:
        """The earliest time a held unit may move: a grace period's or the mass-loss
        guard's end (None: none held)."""
        times = [until for _, until in self.graced]
        if self.guard_until is not None:
            times.append(self.guard_until)
        return min(times, default=None)

    @property
    def freed(self) -> frozenset[str]:
        """Machines where room is free once this plan is applied that its units may have
        been turned down for: where it takes units off (the pass places units before some
        of those leave), and where the AtMostOnce units it stops took room in the pass
        (they are placed only once seen stopped)."""
        found = {t.machine for t in self.tasks if t.action is Action.UNSCHEDULE}
        for unit, _ in self.stopping:
            found.update(self.decision.assignments.get(unit, ()))
        return frozenset(found)

    @property
    def placed(self) -> int:
        return len(self.decision.placed)

    @property
    def unplaceable(self) -> int:
        return len(self.decision.unplaceable)

    @property
    def drained(self) -> int:
        return self.decision.drained


def plan(snap: ClusterSnapshot, baseline: Baseline | None = None) -> Plan:
    """The writes that make the schedule match the snapshot's units and machines.

    ``baseline``: the snapshot holds only some units (a scoped pass, engine/scope.py),
    planned against the rest of the cluster as the baseline describes it."""
    current: dict[str, dict[str, ScheduleEntry]] = {}
    marked: list[str] = []
    for entry in snap.schedule:
        current.setdefault(entry.name, {})[entry.machine] = entry
        if entry.moving_from:
            marked.append(entry.name)
    handovers: dict[str, Handover] = {}
    for name in marked:
        found = in_flight(current[name], snap.machines)
        if found is not None:
            handovers[name] = found

    jobs: list[Job] = []
    held: dict[str, str] = {}
    guard = snap.guard if snap.guard is not None and snap.now < snap.guard.until else None
    guarded: set[str] = set()
    graced: dict[str, float] = {}
    unschedule: list[Task] = []
    for name, spec in snap.units.items():
        if spec.desired is DesiredState.INACTIVE or "@." in name:
            continue
        if spec.error:
            held[name] = f"invalid unit file: {spec.error}"
            continue
        entries = current.get(name, {})
        if spec.requirements.at_most_once and not entries and name in snap.stopping:
            held[name] = STOPPING + snap.stopping[name]
            continue
        if guard is not None and entries and not any(m in snap.machines for m in entries):
            held[name] = guard.reason  # its machine may register again: it stays there
            guarded.add(name)
            continue
        hold = _hold_until(snap, spec, entries)
        if hold is not None:
            until, machine = hold
            held[name] = f"AtMostOnce: waiting out the grace period after {machine} was lost"
            graced[name] = until
            continue
        jobs.append(Job(name, spec.requirements))

    for name, entries in current.items():
        why = _not_wanted(name, snap.units.get(name))
        if why is None:
            continue
        for machine in sorted(entries):
            unschedule.append(Task(Action.UNSCHEDULE, name, why, machine))

    # A unit in a start-first move is planned on its new machine; its old copy's room
    # stays taken until it stops.
    seen: dict[str, list[str]] = {}
    for job in jobs:
        handover = handovers.get(job.name)
        machines = list(current.get(job.name, {}))
        if handover is not None:
            machines.remove(handover.old)
        seen[job.name] = machines
    decision = schedule(
        snap.machines.values(),
        jobs,
        floor=_floor(snap.units.values()) if baseline is None else None,
        current=seen,
        flags=snap.flags,
        strategy=snap.strategy,
        drain_batch=snap.drain_batch,
        baseline=baseline,
        lingering={n: h.old for n, h in handovers.items() if n in seen},
        moves=snap.moves,
        away=_away(snap, jobs),
        budget=_budget(snap, jobs, current, baseline),
    )
    marks, moving, finishing = _moves(snap, decision, handovers)
    moved_from: dict[str, str] = {}
    stopping: dict[str, str] = {}
    for removal in decision.removals:
        if decision.handovers.get(removal.unit) == removal.machine:
            continue  # a start-first move: the old entry stays until the new copy is up
        if guard is not None and removal.machine not in snap.machines:
            guarded.add(removal.unit)  # a Global unit's copy there: kept as well
            continue
        stranded = _stranded(snap, decision, removal.unit, removal.machine)
        if stranded is not None:
            held[removal.unit] = stranded
            continue
        unschedule.append(Task(Action.UNSCHEDULE, removal.unit, removal.reason, removal.machine))
        moved_from.setdefault(removal.unit, f"{removal.machine} ({removal.reason})")
        # Never two at once: an AtMostOnce unit leaving a live machine must stop there
        # before it is scheduled anywhere else.
        if snap.units[removal.unit].requirements.at_most_once and removal.machine in snap.machines:
            stopping[removal.unit] = removal.machine
            held[removal.unit] = STOPPING + removal.machine

    guard_until = guard.until if guard is not None and guarded else None
    writes = _schedule_writes(snap, decision, current, moved_from, stopping, marks)
    records = _placement_writes(snap, decision, {**decision.waiting, **moving, **held})
    return Plan(
        (*unschedule, *finishing, *writes, *records),
        decision,
        tuple(sorted(held)),
        tuple(sorted(stopping.items())),
        tuple(sorted(marks)),
        tuple(sorted(guarded)),
        tuple(sorted(graced.items())),
        guard_until,
    )


def _floor(units: Iterable[UnitSpec]) -> tuple[int, int]:
    """The smallest (cpu, mem) any unit to be placed reserves, held ones too (spread leaves
    machines without that much room out of its lists; the kept slots use the same)."""
    cpu = mem = None
    for spec in units:
        if spec.desired is DesiredState.INACTIVE or spec.error or "@." in spec.name:
            continue
        req = spec.requirements
        cpu = req.cpu_millis if cpu is None else min(cpu, req.cpu_millis)
        mem = req.memory_bytes if mem is None else min(mem, req.memory_bytes)
    return (cpu or 0, mem or 0)


def _away(snap: ClusterSnapshot, jobs: Sequence[Job]) -> dict[str, frozenset[str]]:
    """Units a rolling update moves start-first (see fleetd.model.Unit): a non-Global
    unit's pinned machines hold its old copy, which it leaves for any other machine."""
    found = {}
    for job in jobs:
        spec = snap.units[job.name]
        if spec.pinned and not job.requirements.global_:
            found[job.name] = frozenset(m for m, _ in spec.pinned)
    return found


def _budget(
    snap: ClusterSnapshot,
    jobs: Sequence[Job],
    current: Mapping[str, Mapping[str, ScheduleEntry]],
    baseline: Baseline | None,
) -> Budget | None:
    """The disruption budgets of the groups among ``jobs`` (None: no group has one); every
    unit of such a group counts, the held ones (down) too (a scoped pass: those its
    baseline lists)."""
    if not any(job.requirements.max_unavailable is not None for job in jobs):
        return None
    if baseline is not None:
        return budget(baseline.members, snap.states, snap.stopping)
    members = [
        Member(name, spec.hash, spec.desired, spec.requirements, tuple(current.get(name, ())))
        for name, spec in snap.units.items()
        if spec.requirements.max_unavailable is not None and not spec.error
    ]
    return budget(members, snap.states, snap.stopping)


def _moves(
    snap: ClusterSnapshot, decision: Decision, handovers: Mapping[str, Handover]
) -> tuple[dict[str, str], dict[str, str], list[Task]]:
    """Start-first moves after this pass: the mark each unit's new entry carries (unit ->
    old machine), their placement reasons, and the old entries that go now."""
    marks: dict[str, str] = {}
    moving: dict[str, str] = {}
    finishing: list[Task] = []
    gone = {(r.unit, r.machine) for r in decision.removals}
    for name, handover in handovers.items():
        spec = snap.units.get(name)
        assigned = decision.assignments.get(name, ())
        if spec is None or not assigned or handover.old in assigned:
            continue  # not wanted, or it stays on its old machine (the move is off)
        if handover.new not in assigned:
            if (name, handover.old) in gone:
                continue  # its old copy goes too (no room for it any more): a plain move
            # Its new entry goes (machine lost, constraint): the next machine takes over.
            handover = Handover(name, handover.old, assigned[0])
            marks[name] = handover.old
            moving[name] = waiting_reason(handover, None)
            continue
        state = snap.states.get((name, handover.new))
        if finished(handover, spec.desired, spec.hash, state):
            why = f"moved start-first to {handover.new}, where it is active and healthy"
            finishing.append(Task(Action.UNSCHEDULE, name, why, handover.old))
        else:
            marks[name] = handover.old
            overdue = late(handover, snap.placements.get(name), snap.wall, snap.move_timeout)
            moving[name] = waiting_reason(handover, state, snap.move_timeout if overdue else 0)
    for name, old in decision.handovers.items():
        marks[name] = old
        moving[name] = waiting_reason(Handover(name, old, decision.assignments[name][0]), None)
    return marks, moving, finishing


def _stranded(snap: ClusterSnapshot, decision: Decision, unit: str, machine: str) -> str | None:
    """Why ``unit`` stays scheduled on ``machine``, lost, if it is pinned there (else
    None): unscheduling it would gain nothing, and the machine's agent, back (a restarted
    fleetd, a blink of its etcd connection), would stop it and start it again."""
    pinned = snap.units[unit].requirements.machine_id
    if machine in snap.machines or decision.assignments.get(unit):
        return None
    if pinned is None or not machine.startswith(pinned):
        return None
    return f"pinned to machine {machine}, which is lost: it stays scheduled there"


def _hold_until(
    snap: ClusterSnapshot, spec: UnitSpec, entries: Mapping[str, ScheduleEntry]
) -> tuple[float, str] | None:
    """For an AtMostOnce unit only on lost machines: (until when, which machine), if not yet."""
    if not spec.requirements.at_most_once or not entries:
        return None
    if any(machine in snap.machines for machine in entries):
        return None
    machine = max(entries, key=lambda m: snap.lost.get(m, snap.now))
    until = snap.lost.get(machine, snap.now) + snap.at_most_once_grace
    return (until, machine) if snap.now < until else None


def _not_wanted(name: str, spec: UnitSpec | None) -> str | None:
    if spec is None:
        return "unit destroyed"
    if "@." in name:
        return "a template cannot be scheduled"
    if spec.desired is DesiredState.INACTIVE:
        return "desired state is inactive"
    return None


def _schedule_writes(
    snap: ClusterSnapshot,
    decision: Decision,
    current: Mapping[str, Mapping[str, ScheduleEntry]],
    moved_from: Mapping[str, str],
    stopping: Mapping[str, str],
    marks: Mapping[str, str],
) -> list[Task]:
    tasks: list[Task] = []
    new = {(p.unit, p.machine): p.reason for p in decision.placed}
    for name, machines in decision.assignments.items():
        if name in stopping:
            continue
        spec = snap.units[name]
        existing = current.get(name, {})
        mark = marks.get(name, "")
        for machine in machines:
            entry = ScheduleEntry(machine, name, spec.hash_on(machine), spec.desired, mark)
            old = existing.get(machine)
            if old is None:
                why = new.get((name, machine), "placed")
                if mark:
                    why = f"{why}; moving start-first from {mark}"
                elif name in moved_from:
                    why = f"{why}; moved from {moved_from[name]}"
                tasks.append(Task(Action.SCHEDULE, name, why, machine, entry))
            elif old != entry:
                tasks.append(Task(Action.UPDATE, name, _update_reason(old, entry), machine, entry))
    return tasks


def _update_reason(old: ScheduleEntry, new: ScheduleEntry) -> str:
    parts = []
    if old.desired != new.desired:
        parts.append(f"desired state {old.desired} -> {new.desired}")
    if old.hash != new.hash:
        parts.append(f"unit file changed ({old.hash[:7]} -> {new.hash[:7]})")
    if old.moving_from != new.moving_from:
        if new.moving_from:
            parts.append(f"moving start-first from {new.moving_from}")
        else:
            parts.append(f"start-first move from {old.moving_from} done")
    return ", ".join(parts)


def _placement_writes(
    snap: ClusterSnapshot, decision: Decision, held: Mapping[str, str]
) -> list[Task]:
    tasks: list[Task] = []
    reasons = {**decision.unplaceable, **held}
    for name in sorted(reasons):
        text = reasons[name]
        pairs = decision.rejections.get(name, ())
        old = snap.placements.get(name)
        if old is not None and old.summary == text and old.rejections == pairs:
            continue
        kept = old is not None and move_of(old.summary) == move_of(text)  # a new move: anew
        since = old.since if old is not None and kept else snap.wall
        record = Placement(name, text, pairs, since)
        tasks.append(Task(Action.RECORD, name, "cannot be placed", placement=record))
    for name in sorted(snap.placements):
        if name in reasons:
            continue
        if name in decision.assignments:
            why = f"placed on {', '.join(decision.assignments[name])}"
        else:
            why = _not_wanted(name, snap.units.get(name)) or "no longer waiting"
        tasks.append(Task(Action.CLEAR, name, why))
    return tasks
