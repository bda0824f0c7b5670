"""Maintenance of machines: the records in the registry (pure).

A *maintenance* (``maintenance/current``) takes machines down one slot at a
time without interrupting the services: for each machine, at most
``max_unavailable`` at once, a *job* goes cordon -> drain -> the action on
that machine, run by its agent (a reboot, or a command) -> wait until it is
back (registered again, its agent connected to systemd; a new boot for a
reboot) -> uncordon -> the next machine.  Once no machine is draining or down, one
rebalance spreads the units over the machines again (fleetd/maintenance/balance.py):
the maintenance is done only then.  The engine leader drives it
from the record alone (fleetd/maintenance/driver.py), so a new leader goes
on where the last one stopped.  Times are wall-clock seconds.

The action reaches the machine through ``machine-actions/<machine>``
(``MachineAction``), which the leader writes and the machine's agent runs and
reports on.  A machine may ask for a reboot itself (``reboot-requests/
<machine>``, ``RebootRequest``): the leader serves requests as a maintenance
of its own (``requested``) whose slots are the cluster's semaphore, of size
the cluster setting ``max_unavailable`` (fleetd/clustersettings.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

MAX_MACHINES = 10_000
MAX_ARGV = 64
MAX_ARG = 4096


class Phase(StrEnum):
    """``running``; ``stopping``: a job failed or it was cancelled, no new one starts and
    those under way finish (on a cancel a draining machine stops draining); ``done``;
    ``failed``; ``cancelled``."""

    RUNNING = "running"
    STOPPING = "stopping"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        return self in (Phase.RUNNING, Phase.STOPPING)


class JobPhase(StrEnum):
    """One machine's way through a maintenance.

    ``pending``: not started; ``draining``: cordoned, its units leave; ``acting``: its
    agent runs the action; ``returning``: back and uncordoned (it no longer takes a
    slot), it waits until no machine is draining or down, then the rebalance brings it
    units until it has as many as it had; ``done``; ``failed`` (it stays cordoned)."""

    PENDING = "pending"
    DRAINING = "draining"
    ACTING = "acting"
    RETURNING = "returning"
    DONE = "done"
    FAILED = "failed"

    @property
    def holds_slot(self) -> bool:
        return self in (JobPhase.DRAINING, JobPhase.ACTING)

    @property
    def over(self) -> bool:
        return self in (JobPhase.DONE, JobPhase.FAILED)


class ActionKind(StrEnum):
    REBOOT = "reboot"
    COMMAND = "command"


@dataclass(frozen=True, slots=True)
class Action:
    """What is done to each machine: a reboot (``systemctl reboot``), or ``argv`` run
    without a shell."""

    kind: ActionKind = ActionKind.REBOOT
    argv: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "reboot" if self.kind is ActionKind.REBOOT else "command " + " ".join(self.argv)


@dataclass(frozen=True, slots=True)
class Job:
    """One machine of a maintenance.

    ``detail``: what it does or waits for, or why it failed; ``boot_id``: the machine's
    boot when the action was asked for; ``prior``: its (unschedulable, draining) flags
    before it was cordoned, restored after; ``moved``: the units on it when it was
    cordoned (how many it is to have again, and which units are at home there);
    ``refill``: the units the rebalance asked to it (None: not rebalanced yet);
    ``exit_status``: of the command."""

    machine: str
    phase: JobPhase = JobPhase.PENDING
    since: float = 0.0
    detail: str = ""
    boot_id: str = ""
    prior: tuple[bool, bool] = (False, False)
    moved: tuple[str, ...] = ()
    exit_status: int | None = None
    refill: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Maintenance:
    """``failure``: which machine failed and why (the maintenance stops after it);
    ``requested``: it serves machines' reboot requests; ``cancelled``: who cancelled it
    ("": nobody)."""

    id: str
    action: Action
    jobs: tuple[Job, ...]
    max_unavailable: int = 1
    phase: Phase = Phase.RUNNING
    by: str = ""
    started: float = 0.0
    finished: float = 0.0
    message: str = ""
    failure: str = ""
    requested: bool = False
    cancelled: str = ""

    @property
    def active(self) -> bool:
        return self.phase.active

    def job(self, machine: str) -> Job | None:
        return next((j for j in self.jobs if j.machine == machine), None)

    def with_job(self, job: Job) -> Maintenance:
        jobs = tuple(job if j.machine == job.machine else j for j in self.jobs)
        if job.machine not in {j.machine for j in self.jobs}:
            jobs = (*jobs, job)
        return replace(self, jobs=jobs)


class ActionState(StrEnum):
    """``requested`` (by the leader); ``running`` (the agent took it); ``rebooting``
    (the agent asked systemd to reboot); ``done``, ``failed`` (the agent's report)."""

    REQUESTED = "requested"
    RUNNING = "running"
    REBOOTING = "rebooting"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class MachineAction:
    """``machine-actions/<machine>``: the action a machine's agent is asked to run.

    ``id`` names the maintenance and machine it belongs to; ``boot_id`` is the boot
    it was asked in; ``exit_status`` and ``message`` are the agent's report."""

    id: str
    action: Action
    state: ActionState = ActionState.REQUESTED
    boot_id: str = ""
    exit_status: int | None = None
    message: str = ""
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class RebootRequest:
    """``reboot-requests/<machine>``: the machine asks for a reboot (``reason``: the flag
    file its agent saw, or who asked through the API); ``window``: its
    ``maintenance_window`` ("" = any time), read at ``utc_offset`` seconds east of UTC."""

    machine: str
    since: float = 0.0
    reason: str = ""
    window: str = ""
    utc_offset: int = 0
