"""Starting and reading maintenance of machines, and reboot requests (no FastAPI:
``fleetctl --driver etcd`` uses it too).

``start_maintenance`` is ``POST /maintenance``.  Every check runs before anything is
written, so a refused maintenance changes nothing: at least one machine, each a
registered machine named once (NotFound, InvalidInput); ``max_unavailable`` at least 1
(InvalidInput; not given: the cluster setting); a command is a non-empty list of
arguments without NUL (InvalidInput); no other maintenance is active (Conflict).  Then the record is
written by compare-and-swap; the engine leader drives the rest
(fleetd/maintenance/driver.py).

``cancel_maintenance`` is ``POST /maintenance/cancel``: the active maintenance is
marked cancelled (``stopping``) by compare-and-swap, nothing else; the leader stops
it safely (fleetd/maintenance/plan.py).  None ever started (NotFound), one that is
over or already being cancelled (Conflict): nothing is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from fleetd import clustersettings
from fleetd.caller import Caller
from fleetd.errors import Conflict, InvalidInput, NotFound
from fleetd.maintenance.record import (
    MAX_ARG,
    MAX_ARGV,
    Action,
    ActionKind,
    Job,
    JobPhase,
    Maintenance,
    Phase,
    RebootRequest,
)
from fleetd.maintenance.store import MaintenanceStore
from fleetd.registry.store import Store

from .. import wire
from .history import rfc3339


def action_of(command: Sequence[str] | None) -> Action:
    """The action of a maintenance: a reboot, or ``command`` (checked)."""
    if command is None:
        return Action()
    if not command or not command[0]:
        raise InvalidInput("the command is empty: give the program and its arguments")
    if len(command) > MAX_ARGV:
        raise InvalidInput(f"the command has {len(command)} arguments (at most {MAX_ARGV})")
    for arg in command:
        if "\0" in arg or len(arg) > MAX_ARG:
            raise InvalidInput(
                f"command argument {arg[:40]!r}: no NUL and at most {MAX_ARG} characters"
            )
    return Action(ActionKind.COMMAND, tuple(command))


async def start_maintenance(
    store: Store,
    machines: Sequence[str] | None,
    *,
    all_machines: bool = False,
    max_unavailable: int | None = None,
    command: Sequence[str] | None = None,
    caller: Caller,
    clock: Callable[[], float] = time.time,
) -> Maintenance:
    """Write a new maintenance of ``machines`` (ids, in that order) or of every registered
    machine (by hostname); see the module's docstring for what is refused.
    ``max_unavailable`` None: the cluster setting's."""
    if max_unavailable is None:
        settings, _ = await store.get_cluster_settings()
        max_unavailable = settings.max_unavailable or clustersettings.MAX_UNAVAILABLE
    if max_unavailable < 1:
        raise InvalidInput(
            f"max-unavailable must be at least 1 (machines taken down at once), got "
            f"{max_unavailable}"
        )
    action = action_of(command)
    if all_machines and machines:
        raise InvalidInput("give machines or all, not both")
    registered = {m.id: m for m in await store.list_machines()}
    if all_machines:
        ids = [m.id for m in sorted(registered.values(), key=lambda m: (m.hostname, m.id))]
        if not ids:
            raise InvalidInput("no machine is registered")
    else:
        ids = list(machines or ())
        if not ids:
            raise InvalidInput("give the machines to take down, or all")
        twice = sorted({m for m in ids if ids.count(m) > 1})
        if twice:
            raise InvalidInput(f"machine {twice[0]} is named more than once")
        unknown = [m for m in ids if m not in registered]
        if unknown:
            raise NotFound(f"machine {unknown[0]} is not registered (see list-machines)")
    records = MaintenanceStore(store)
    found = await records.get()
    if found is not None and found[0].active:
        current = found[0]
        raise Conflict(
            f"maintenance {current.id} ({current.action}, started by "
            f"{current.by or 'unknown'}) is still {current.phase}: one at a time "
            "(fleetctl reboot --status)"
        )
    now = clock()
    record = Maintenance(
        id=f"maintenance-{int(now * 1000)}",
        action=action,
        jobs=tuple(Job(m) for m in ids),
        max_unavailable=max_unavailable,
        by=caller.name,
        started=now,
        message="waiting for the engine leader",
    )
    await records.create(record, found[1] if found is not None else 0)
    return record


async def get_maintenance(store: Store) -> Maintenance:
    found = await MaintenanceStore(store).get()
    if found is None:
        raise NotFound("no maintenance was ever started")
    return found[0]


CANCEL_ATTEMPTS = 5
"""Reads and compare-and-swaps a cancel tries while the leader's steps change the record."""


async def cancel_maintenance(store: Store, *, caller: Caller) -> Maintenance:
    """Mark the active maintenance cancelled; see the module's docstring.  A maintenance
    serving reboot requests also withdraws the requests of the machines it did not
    start (else the leader would serve them again at once)."""
    records = MaintenanceStore(store)
    for _ in range(CANCEL_ATTEMPTS):
        found = await records.get()
        if found is None:
            raise NotFound("no maintenance was ever started: nothing to cancel")
        current, revision = found
        if not current.active:
            raise Conflict(
                f"maintenance {current.id} is {current.phase}: nothing runs to cancel "
                "(fleetctl reboot --status)"
            )
        if current.cancelled:
            raise Conflict(
                f"maintenance {current.id} is already being cancelled (by {current.cancelled})"
            )
        record = replace(
            current,
            phase=Phase.STOPPING,
            cancelled=caller.name,
            message=f"stopping (cancelled by {caller.name}): waiting for the engine leader",
        )
        pending = [j.machine for j in current.jobs if j.phase is JobPhase.PENDING]
        ops = [records.clear_request_op(m) for m in pending] if current.requested else []
        try:
            await records.replace(record, revision, ops)
        except Conflict:
            continue  # a step of the leader came first: look again
        return record
    raise Conflict("the maintenance kept changing while it was cancelled: try again")


async def request_reboot(
    store: Store, machine: str, *, caller: Caller, clock: Callable[[], float] = time.time
) -> RebootRequest:
    """Ask for a reboot of ``machine`` as its agent would; an earlier request stays."""
    if await store.get_machine(machine) is None:
        raise NotFound(f"machine {machine} is not registered (see list-machines)")
    request = RebootRequest(machine, since=clock(), reason=f"asked by {caller.name}")
    records = MaintenanceStore(store)
    if not await records.request(request):
        existing = (await records.list_requests()).get(machine)
        if existing is not None:
            return existing
    return request


async def list_requests(store: Store) -> list[RebootRequest]:
    found = await MaintenanceStore(store).list_requests()
    return [found[m] for m in sorted(found)]


def _time(value: float) -> str | None:
    return rfc3339(value) if value else None


def view(record: Maintenance) -> wire.Maintenance:
    return wire.Maintenance(
        id=record.id,
        phase=record.phase.value,
        action=record.action.kind.value,
        command=list(record.action.argv) if record.action.kind is ActionKind.COMMAND else None,
        maxUnavailable=record.max_unavailable,
        startedBy=record.by,
        started=_time(record.started),
        finished=_time(record.finished),
        message=record.message,
        failure=record.failure,
        requested=record.requested,
        cancelledBy=record.cancelled or None,
        machines=[
            wire.MaintenanceMachine(
                id=j.machine,
                phase=j.phase.value,
                detail=j.detail,
                since=_time(j.since),
                exitStatus=j.exit_status,
            )
            for j in record.jobs
        ],
    )


def request_view(request: RebootRequest) -> wire.RebootRequest:
    return wire.RebootRequest(
        machineID=request.machine,
        since=_time(request.since),
        reason=request.reason,
        window=request.window or None,
    )
