"""One step of a maintenance: the record and what the cluster looks like -> the next
record and the writes that take it there (pure).

Every job (one machine) moves on as far as the situation allows, in order:

- ``pending`` -> ``draining`` while fewer than ``max_unavailable`` jobs hold a slot
  (draining or acting) and the maintenance is running: cordon and drain (the
  flags), remembering the flags it had and the units on it;
- ``draining`` -> ``acting`` once no unit is left to move and taking the machine
  down takes no group over its disruption budget: the action is asked of its
  agent (``machine-actions/<machine>``) with the boot it is in;
- ``acting`` -> ``returning`` once it is back: a reboot when the machine is
  registered with another boot id and its agent reaches systemd; a command once
  the agent reports exit status 0 (and it is registered, its agent connected):
  the flags it had are put back, the action cleared (and a reboot request it
  had, once rebooted); it no longer takes a slot, so the next machine drains
  (onto it, among others);
- ``returning``: once no job holds a slot, the rebalance (balance.py) gives every
  returning job its ``refill``, the units that make its count what it was, at
  once; -> ``done`` once they are there (asked through ``moves``: start-first) or
  cannot come, or after ``returns`` seconds.  A job nothing left is done at once;
- a failed action (an exit status other than 0, a reboot systemd refused), a
  machine not back within ``back`` seconds, or a drain whose start-first move
  is past its deadline (``Drain.late``): ``failed``, the machine stays cordoned
  and the maintenance stops: no job starts any more, the ones under way
  finish, then it is ``failed``, naming the machine and why;
- a cancelled maintenance (``record.cancelled``) stops too: no job starts any
  more, a draining machine stops draining (its flags put back: ``returning``),
  an acting one finishes (back, uncordoned), the rebalance follows, then it is
  ``cancelled``.

Every wait has a ``detail`` the record shows (``fleetctl reboot --status``).
Time (``now``, wall seconds) is an input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from fleetd.maintenance.balance import refills
from fleetd.maintenance.record import (
    ActionKind,
    ActionState,
    Job,
    JobPhase,
    MachineAction,
    Maintenance,
    Phase,
    RebootRequest,
)
from fleetd.maintenance.window import in_window
from fleetd.model import Machine, MachineFlags

SHOWN = 3
"""Units named in a detail before '... and N more'."""
WAITING = "back; units come to it once no machine is draining or down"


@dataclass(frozen=True, slots=True)
class Timeouts:
    back: float = 600.0  # from the action asked to the machine back
    returns: float = 60.0  # for the units that left to come back


@dataclass(frozen=True, slots=True)
class Drain:
    """Where a machine's drain stands: units still to leave it (still scheduled there,
    or still running there), with why for a few; ``blocked``: why it may not be taken
    down now although nothing is left to move (a disruption budget), else "";
    ``late``: a start-first move from it past its deadline (the drain stops), else ""."""

    left: tuple[str, ...] = ()
    why: Mapping[str, str] = field(default_factory=dict)
    blocked: str = ""
    late: str = ""


@dataclass(frozen=True, slots=True)
class Seen:
    """One machine of the maintenance as the leader sees it now."""

    machine: Machine | None = None  # its registration (None: not registered)
    flags: MachineFlags = field(default_factory=MachineFlags)
    action: MachineAction | None = None
    drain: Drain | None = None  # None: not looked at (it was not draining yet)
    units: tuple[str, ...] = ()  # the units scheduled on it that may move (not Global)


@dataclass(frozen=True, slots=True)
class Situation:
    record: Maintenance
    machines: Mapping[str, Seen]
    now: float
    where: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """unit -> machines it is scheduled on (none for now: ()), for the units of jobs
    that may take units back (and of their refills); a unit not here is gone, is not
    to run, or moves only with another one (a MachineOf follower)."""
    refused: Mapping[str, str] = field(default_factory=dict)
    """Moves the engine could not make, with why."""
    requests: Mapping[str, RebootRequest] = field(default_factory=dict)
    timeouts: Timeouts = field(default_factory=Timeouts)


class Kind(StrEnum):
    FLAGS = "flags"
    ACTION = "action"
    CLEAR_ACTION = "clear-action"
    CLEAR_REQUEST = "clear-request"


@dataclass(frozen=True, slots=True)
class Task:
    kind: Kind
    machine: str
    reason: str
    flags: MachineFlags | None = None
    action: MachineAction | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """The next record (``changed``: it differs), the writes in order, the moves the
    engine is asked for now (unit -> machine)."""

    record: Maintenance
    tasks: tuple[Task, ...] = ()
    moves: Mapping[str, str] = field(default_factory=dict)
    changed: bool = False


def action_id(record: Maintenance, machine: str) -> str:
    return f"{record.id}/{machine}"


def step(s: Situation) -> Step:
    record = s.record
    if not record.active:
        return Step(record)
    tasks: list[Task] = []
    moves: dict[str, str] = {}
    for job in record.jobs:
        seen = s.machines.get(job.machine, Seen())
        new = _advance(s, record, job, seen, tasks, moves)
        record = record.with_job(new)
        if new.phase is JobPhase.FAILED and job.phase is not JobPhase.FAILED and not record.failure:
            record = replace(record, phase=Phase.STOPPING, failure=f"{job.machine}: {new.detail}")
    for job in _rebalanced(s, record):
        record = record.with_job(_advance(s, record, job, Seen(), tasks, moves))
    record = _finish(record, s.now)
    return Step(record, tuple(tasks), moves, record != s.record)


def _advance(
    s: Situation,
    record: Maintenance,
    job: Job,
    seen: Seen,
    tasks: list[Task],
    moves: dict[str, str],
) -> Job:
    """``job`` moved on as far as it can go now (a phase at a time, in order)."""
    for _ in range(len(JobPhase)):
        nxt = _next(s, record, job, seen, tasks, moves)
        if nxt.phase is job.phase:
            return nxt
        job = nxt
        record = record.with_job(job)
    return job


def _next(
    s: Situation,
    record: Maintenance,
    job: Job,
    seen: Seen,
    tasks: list[Task],
    moves: dict[str, str],
) -> Job:
    m, now = job.machine, s.now
    if job.phase is JobPhase.PENDING:
        return _start(s, record, job, seen, tasks)
    if job.phase is JobPhase.DRAINING:
        if record.cancelled:
            _uncordon(job, seen, tasks, "cancelled: stop draining, uncordon")
            detail = "cancelled while draining: uncordoned"
            return replace(job, phase=JobPhase.RETURNING, since=now, detail=detail)
        if seen.machine is None:
            return _waited(job, now, s.timeouts.back, f"{m} is not registered")
        if seen.drain is None:
            return job  # cordoned in this step: its drain is looked at from the next one
        if seen.drain.late:
            detail = f"drain stopped: {seen.drain.late}"
            return replace(job, phase=JobPhase.FAILED, since=now, detail=detail)
        if seen.drain.left:
            return replace(job, detail=_draining(seen.drain))
        if seen.drain.blocked:
            return replace(job, detail=seen.drain.blocked)
        action = MachineAction(
            action_id(record, m), record.action, boot_id=seen.machine.boot_id, since=now
        )
        tasks.append(Task(Kind.ACTION, m, f"drained: {record.action} asked", action=action))
        return replace(
            job,
            phase=JobPhase.ACTING,
            since=now,
            boot_id=seen.machine.boot_id,
            detail=f"{record.action}: asked of its agent",
        )
    if job.phase is JobPhase.ACTING:
        return _acting(s, record, job, seen, tasks)
    if job.phase is JobPhase.RETURNING:
        if job.refill is None and job.moved:
            return replace(job, detail=WAITING)
        left = _returns(s, job)
        for unit in left:
            moves.setdefault(unit, m)  # in two refills (a later rebalance): the first
        if not left:
            return replace(job, phase=JobPhase.DONE, since=now, detail="done")
        if now - job.since >= s.timeouts.returns:
            detail = f"done; {_count(left)} did not come: {_names(left)}"
            return replace(job, phase=JobPhase.DONE, since=now, detail=detail)
        refused = [f"{u}: {s.refused[u]}" for u in left[:SHOWN] if u in s.refused]
        why = f" (refused for now: {'; '.join(refused)})" if refused else ""
        return replace(job, detail=f"rebalancing: {_count(left)} to come: {_names(left)}{why}")
    return job


def _start(s: Situation, record: Maintenance, job: Job, seen: Seen, tasks: list[Task]) -> Job:
    m = job.machine
    if record.phase is not Phase.RUNNING:
        why = "was cancelled" if record.cancelled and not record.failure else "stopped"
        return replace(job, detail=f"not started: the maintenance {why}")
    before = record.jobs[: [j.machine for j in record.jobs].index(m)]
    if not record.requested and any(j.phase is JobPhase.PENDING for j in before):
        return replace(job, detail="waiting for its turn")
    if sum(1 for j in record.jobs if j.phase.holds_slot) >= record.max_unavailable:
        return replace(job, detail=f"waiting for a slot ({record.max_unavailable} at a time)")
    request = s.requests.get(m)
    if record.requested and request is None:
        return replace(job, phase=JobPhase.DONE, since=s.now, detail="no longer requested")
    if (
        request is not None
        and record.requested
        and not in_window(request.window, s.now, request.utc_offset)
    ):
        return replace(job, detail=f"outside its maintenance window ({request.window})")
    if seen.machine is None:
        return replace(job, detail=f"waiting: {m} is not registered")
    flags = seen.flags
    cordoned = replace(flags, unschedulable=True, draining=True)
    # Units that came from a machine taken down before are that machine's to take back.
    guests = {u for j in record.jobs if j.machine != m for u in j.moved}
    tasks.append(Task(Kind.FLAGS, m, "cordon and drain", flags=cordoned))
    return replace(
        job,
        phase=JobPhase.DRAINING,
        since=s.now,
        prior=(flags.unschedulable, flags.draining),
        moved=tuple(u for u in seen.units if u not in guests),
        detail="draining",
    )


def _acting(s: Situation, record: Maintenance, job: Job, seen: Seen, tasks: list[Task]) -> Job:
    m, now = job.machine, s.now
    action = seen.action if seen.action and seen.action.id == action_id(record, m) else None
    machine = seen.machine
    up = machine is not None and machine.systemd_connected
    rebooted = up and machine is not None and machine.boot_id not in ("", job.boot_id)
    if action is not None and action.state is ActionState.FAILED:
        status = action.exit_status
        detail = f"{record.action} failed: {action.message}"
        if status is not None:
            detail = f"{record.action} exited with status {status}: {action.message}"
        return replace(job, phase=JobPhase.FAILED, since=now, detail=detail, exit_status=status)
    done = action is not None and action.state is ActionState.DONE
    back = rebooted if record.action.kind is ActionKind.REBOOT else up and done
    if back:
        status = action.exit_status if action is not None else None
        _uncordon(job, seen, tasks, "back: uncordon")
        tasks.append(Task(Kind.CLEAR_ACTION, m, "back"))
        request = s.requests.get(m)
        if request is not None and rebooted and request.since <= job.since:
            tasks.append(Task(Kind.CLEAR_REQUEST, m, "rebooted as it asked"))
        return replace(job, phase=JobPhase.RETURNING, since=now, detail="back", exit_status=status)
    if now - job.since >= s.timeouts.back:
        detail = f"not back within {s.timeouts.back:.0f}s after {record.action}"
        return replace(job, phase=JobPhase.FAILED, since=now, detail=detail)
    if action is None or action.state is ActionState.REQUESTED:
        return replace(job, detail=f"{record.action}: asked of its agent")
    if machine is None:
        return replace(job, detail=f"{record.action}: waiting for it to register again")
    if not machine.systemd_connected:
        return replace(job, detail=f"{record.action}: waiting for its agent to reach systemd")
    return replace(job, detail=f"{record.action}: {action.state}")


def _uncordon(job: Job, seen: Seen, tasks: list[Task], reason: str) -> None:
    """Put back the flags the job's machine had before it was cordoned."""
    unschedulable, draining = job.prior
    flags = replace(seen.flags, unschedulable=unschedulable, draining=draining)
    tasks.append(Task(Kind.FLAGS, job.machine, reason, flags=flags))


def _waited(job: Job, now: float, limit: float, why: str) -> Job:
    if now - job.since >= limit:
        return replace(job, phase=JobPhase.FAILED, since=now, detail=f"{why} for {limit:.0f}s")
    return replace(job, detail=f"waiting: {why}")


def _rebalanced(s: Situation, record: Maintenance) -> list[Job]:
    """The returning jobs given their refill now: once no job holds a slot, those not
    rebalanced yet, all at once (their refills are counted together)."""
    if any(j.phase.holds_slot for j in record.jobs):
        return []
    waiting = [j for j in record.jobs if j.phase is JobPhase.RETURNING and j.refill is None]
    if not waiting:
        return []
    on = {j.machine: s.machines.get(j.machine, Seen()).units for j in waiting}
    found = refills([(j.machine, j.moved) for j in waiting], on, s.where)
    return [replace(j, since=s.now, refill=found.get(j.machine, ())) for j in waiting]


def _returns(s: Situation, job: Job) -> list[str]:
    """Units of the job's refill not (only) on its machine yet (a move the engine refused
    is asked again: the machine may just not be uncordoned in its model yet)."""
    left = []
    for unit in job.refill or ():
        if unit not in s.where or s.where[unit] == (job.machine,):
            continue  # gone (or not to run any more), or back
        left.append(unit)  # elsewhere, or nowhere for now (AtMostOnce: it stops first)
    return left


def _draining(drain: Drain) -> str:
    shown = [f"{u} ({drain.why[u]})" if u in drain.why else u for u in drain.left[:SHOWN]]
    more = f" and {len(drain.left) - SHOWN} more" if len(drain.left) > SHOWN else ""
    return f"draining: {_count(drain.left)} to move: {', '.join(shown)}{more}"


def _count(units: tuple[str, ...] | list[str]) -> str:
    return f"{len(units)} unit" + ("" if len(units) == 1 else "s")


def _names(units: list[str]) -> str:
    more = f" and {len(units) - SHOWN} more" if len(units) > SHOWN else ""
    return ", ".join(units[:SHOWN]) + more


def _finish(record: Maintenance, now: float) -> Maintenance:
    """The maintenance's own phase and message from its jobs'."""
    busy = [j for j in record.jobs if j.phase.holds_slot or j.phase is JobPhase.RETURNING]
    if record.phase is Phase.STOPPING and not busy:
        if not record.failure:
            message = f"cancelled by {record.cancelled}"
            return replace(record, phase=Phase.CANCELLED, finished=now, message=message)
        return replace(record, phase=Phase.FAILED, finished=now, message=record.failure)
    if record.phase is Phase.RUNNING and all(j.phase.over for j in record.jobs):
        return replace(record, phase=Phase.DONE, finished=now, message="done")
    shown = [j for j in record.jobs if j.phase not in (JobPhase.PENDING, JobPhase.DONE)]
    message = "; ".join(f"{j.machine}: {j.detail}" for j in shown[:SHOWN])
    if record.phase is Phase.STOPPING:
        why = record.failure or f"cancelled by {record.cancelled}"
        message = f"stopping ({why}); {message}"
    return replace(record, message=message or "waiting")
