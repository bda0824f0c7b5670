"""``fleetctl plan FILE...``: what starting (or loading, or submitting) units would do,
asked of the cluster without writing anything.

Arguments resolve as ``start --replace`` resolves them (a local file, the
submitted template of an instance, a template file next to it, or a unit
already in the cluster); the cluster plans them with the engine's own full
pass (``POST /fleet/v1/plan``) and this module prints the answer as a diff.
Exit status: 0 nothing would change, 1 something would, 2 a unit could not be
placed, 3 no plan was made (a bad file or argument, the cluster not reached).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fleetd.api import wire
from fleetd.api.service.commands import UnitChange
from fleetd.model import DesiredState

from .backend import SCHEDULING_NOTE, Backend
from .helptext import Command
from .options import Driver, Output, options, run
from .table import echo_json
from .units import Units, resolve_units

NO_CHANGE, CHANGES, UNPLACEABLE, FAILED = 0, 1, 2, 3
_SIGNS = {"schedule": "+", "update": "~", "unschedule": "-"}


class PlanCommand(Command):
    """A usage error of ``plan`` exits 3 (no plan was made), as its other errors do."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return list(super().parse_args(ctx, args))
        except typer.Exit:
            raise
        except Exception as exc:
            exc.fleetctl_status = FAILED  # type: ignore[attr-defined]
            raise


def exit_status(answer: wire.PlanResponse) -> int:
    """2 if a unit would not be placed, else 1 if anything would change, else 0."""
    if answer.unplaceable:
        return UNPLACEABLE
    return CHANGES if answer.changed else NO_CHANGE


def _machine(change: wire.PlanChange) -> str:
    return change.hostname or change.machineID


def _unit_line(unit: wire.PlanUnit) -> str | None:
    if unit.result == "created":
        return f"+ unit {unit.name} (new, {unit.desiredState})"
    parts = []
    if unit.previousHash and unit.previousHash != unit.hash:
        parts.append(f"unit file {unit.previousHash[:7]} -> {unit.hash[:7]}")
    if unit.previousDesiredState and unit.previousDesiredState != unit.desiredState:
        parts.append(f"desired state {unit.previousDesiredState} -> {unit.desiredState}")
    return f"~ unit {unit.name}: {', '.join(parts)}" if parts else None


def render(answer: wire.PlanResponse) -> list[str]:
    """The plan as a diff, one line per change (pure)::

    + unit web.service (new, launched)
    - unschedule cache@2.service from m1: stop and unload (replaced by web.service)
    + schedule web.service on m1: load and start (pinned by MachineID)
    ~ update api.service on m2: restart with the new file (unit file changed ...)
    ! unplaceable bigmem.service: m1: needs 1T memory, 2G free; ...
    Plan: 1 to schedule, 1 to update, 1 to unschedule; 1 unplaceable.
    """
    lines = [line for unit in answer.units if (line := _unit_line(unit)) is not None]
    for change in answer.changes:
        where = "from" if change.action == "unschedule" else "on"
        lines.append(
            f"{_SIGNS[change.action]} {change.action} {change.unit} {where} "
            f"{_machine(change)}: {change.effect} ({change.reason})"
        )
    lines += [f"! unplaceable {u.name}: {u.reason}" for u in answer.unplaceable]
    lines += [f"? waiting {w.name}: {w.reason}" for w in answer.waiting]
    lines.append(_summary(answer))
    if answer.pending:
        lines.append(
            f"({answer.pending} more schedule changes are pending regardless of these "
            "units: the engine is still at work)"
        )
    return lines


def _summary(answer: wire.PlanResponse) -> str:
    if not answer.changed and not answer.unplaceable:
        return "No changes: the cluster already has these units as given."
    counts = {action: 0 for action in _SIGNS}
    for change in answer.changes:
        counts[change.action] += 1
    text = (
        f"Plan: {counts['schedule']} to schedule, {counts['update']} to update, "
        f"{counts['unschedule']} to unschedule"
    )
    if answer.unplaceable:
        text += f"; {len(answer.unplaceable)} unplaceable"
    return text + "."


Load = Annotated[
    bool, typer.Option("--load", help="plan loading the units (fleetctl load) instead of starting")
]
Submit = Annotated[
    bool,
    typer.Option(
        "--submit",
        help="plan submitting the files only (fleetctl submit --replace): desired states "
        "stay, new units are inactive",
    ),
]


def plan(ctx: typer.Context, units: Units, load: Load = False, submit: Submit = False) -> None:
    """Show what starting units would do, without changing anything.

    The cluster plans the units as if they were started (with --load, loaded;
    with --submit, only submitted), each file replacing the unit's current one
    (as start --replace), and answers where each unit would run or why it
    could not, and which scheduled units would be added, restarted with a new
    file, replaced (Replaces=) or moved:

      + schedule UNIT on MACHINE: EFFECT (REASON)
      ~ update UNIT on MACHINE: EFFECT (REASON)
      - unschedule UNIT from MACHINE: EFFECT (REASON)
      ! unplaceable UNIT: REASON PER MACHINE

    Exit status: 0 nothing would change, 1 something would, 2 a unit could
    not be placed, 3 no plan was made (a bad file, the cluster not reached).

    Examples:
      fleetctl plan web.service
      fleetctl plan --load units/*.service
      fleetctl plan -o json web@{1..3}.service
    """
    if load and submit:
        typer.echo("plan: --load and --submit exclude each other", err=True)
        raise typer.Exit(FAILED)
    desired = None if submit else DesiredState.LOADED if load else DesiredState.LAUNCHED
    opts = options(ctx)

    async def work(backend: Backend) -> wire.PlanResponse:
        steps = await resolve_units(backend, units, replace=True)
        changes = [UnitChange(step.name, step.options, desired) for step in steps]
        answer = await backend.plan(changes, replace=True)
        notes = {step.name: step.notes for step in steps}
        for unit in answer.units:
            for warning in dict.fromkeys((*notes.get(unit.name, ()), *unit.warnings)):
                typer.echo(f"WARNING: {unit.name}: {warning}", err=True)
        return answer

    try:
        answer = run(ctx, work)
    except typer.Exit as exc:
        raise typer.Exit(FAILED if exc.exit_code == 1 else exc.exit_code) from None
    if opts.driver is Driver.ETCD:
        typer.echo(f"note: {SCHEDULING_NOTE}", err=True)
    if opts.output is Output.JSON:
        echo_json(answer.model_dump(mode="json"))
    else:
        for line in render(answer):
            typer.echo(line)
    raise typer.Exit(exit_status(answer))


def register(app: typer.Typer) -> None:
    app.command("plan", cls=PlanCommand)(plan)
