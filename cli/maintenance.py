"""``fleetctl reboot``: take machines down a few at a time without interrupting the services.

``reboot MACHINE... | --all`` starts a maintenance that the engine leader
drives: for each machine, ``--max-unavailable`` at a time, cordon, drain
(units move start-first), reboot it (or run ``--command`` there), wait until
it is back, uncordon; at the end one rebalance spreads the units over the
machines as before.  fleetctl follows it (exit 1 if it fails) unless
``--no-block``; it goes on if fleetctl exits.
``--status`` shows the current or last maintenance, ``--cancel`` stops the
running one safely, ``--request MACHINE`` asks for a reboot of one machine as
its agent does when the machine needs one (served one slot of the cluster's
reboot semaphore at a time).
"""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from fleetd.api import wire

from . import completion
from .backend import Backend, CliError
from .helptext import Command
from .machines import describe, resolve
from .maintview import final, follow, name_of, say, show_status, what
from .options import Output, fail, options, run
from .table import echo_json, printable


def _argv(command: str) -> list[str]:
    """``--command``'s words, split as a POSIX shell splits them (no shell runs it)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise CliError(f"--command {command!r}: {exc}") from None
    if not argv:
        raise CliError("--command is empty: give the program and its arguments")
    return argv


def reboot(
    ctx: typer.Context,
    machines: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[MACHINE]...",
            help="hostnames or machine ids (or unique prefixes), in the order to take them",
            autocompletion=completion.machines,
            show_default=False,
        ),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="every registered machine, by hostname")
    ] = False,
    max_unavailable: Annotated[
        int | None,
        typer.Option(
            "--max-unavailable",
            metavar="N",
            help="machines taken down at once (default: the cluster setting max_unavailable, "
            "1 unless set with fleetctl config)",
            show_default=False,
        ),
    ] = None,
    command: Annotated[
        str | None,
        typer.Option(
            "--command",
            metavar="CMD",
            help="run CMD on each machine instead of rebooting it: its words split as a "
            "shell would, run without a shell; output in the machine's journal",
            show_default=False,
        ),
    ] = None,
    no_block: Annotated[
        bool, typer.Option("--no-block", help="start it and return without following it")
    ] = False,
    status: Annotated[
        bool, typer.Option("--status", help="show the current or last maintenance")
    ] = False,
    cancel: Annotated[
        bool,
        typer.Option(
            "--cancel",
            help="stop the running maintenance: no machine starts any more, the ones under "
            "way come back and are uncordoned",
        ),
    ] = False,
    request: Annotated[
        str | None,
        typer.Option(
            "--request",
            metavar="MACHINE",
            help="ask for a reboot of MACHINE, served when a slot is free",
            autocompletion=completion.machines,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Reboot machines (or run a command on them) without interrupting the services.

    For each machine, --max-unavailable at a time: cordon, drain (every unit
    that is not AtMostOnce is started elsewhere and healthy before it stops
    there; MaxUnavailable= budgets are kept), reboot it, wait until it is back
    (a new boot, its agent connected to systemd), uncordon; at the end the
    units are spread over the machines as before.  With --command the command
    runs there instead, through its agent; one that fails stops the
    maintenance and leaves its machine cordoned.
    The engine leader drives it: it goes on if fleetctl or the leader's
    machine goes away.  Ends with "Maintenance ... done", or exit status 1.
    Cancelled (--cancel), it stops after each machine's current step, in a safe
    state: a draining machine is uncordoned, one being rebooted comes back and
    is uncordoned, no other one starts, the units are spread again.

    Examples:
      fleetctl reboot --all
      fleetctl reboot --max-unavailable 2 m1 m2 m3
      fleetctl reboot --command "/usr/bin/apt-get -y upgrade" --all
      fleetctl reboot --status
      fleetctl reboot --cancel
      fleetctl reboot --request m2
    """
    as_json = options(ctx).output is Output.JSON
    names = list(machines or ())
    modes = sum((status, cancel, request is not None, bool(names) or every))
    if modes != 1:
        raise fail(
            "give the machines to reboot (MACHINE... or --all), or --status, or --cancel, "
            "or --request MACHINE: exactly one of them"
        )
    if status:
        _status(ctx, as_json)
        return
    if cancel:
        _cancel(ctx, as_json, no_block)
        return
    if request is not None:
        _request(ctx, request, as_json)
        return
    if every and names:
        raise fail("give machines or --all, not both")
    if max_unavailable is not None and max_unavailable < 1:
        raise fail(f"--max-unavailable must be at least 1, got {max_unavailable}")
    try:
        argv = _argv(command) if command is not None else None
    except CliError as exc:
        raise fail(str(exc)) from None

    async def work(backend: Backend) -> tuple[wire.Maintenance, dict[str, wire.Machine]]:
        registered = await backend.list_machines()
        ids = [resolve(name, registered).id for name in names]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise CliError(f"machine {twice[0]} is named more than once")
        body = wire.MaintenanceRequest(
            machines=ids or None, all=every, maxUnavailable=max_unavailable, command=argv
        )
        record = await backend.start_maintenance(body)
        by_id = {m.id: m for m in registered}
        typer.echo(
            f"Maintenance {record.id} started: {what(record)} of "
            f"{', '.join(name_of(m.id, by_id) for m in record.machines)}, "
            f"{record.maxUnavailable} at a time",
            err=True,
        )
        if no_block:
            return record, by_id
        return await follow(backend, record.id, by_id), by_id

    _report(*run(ctx, work), as_json=as_json, no_block=no_block, ended="done")


def _status(ctx: typer.Context, as_json: bool) -> None:
    async def work(backend: Backend) -> tuple[wire.Maintenance, dict[str, wire.Machine]]:
        record = await backend.maintenance()
        return record, {m.id: m for m in await backend.list_machines()}

    record, machines = run(ctx, work)
    if as_json:
        echo_json(record.model_dump(mode="json"))
        return
    show_status(record, machines)


def _cancel(ctx: typer.Context, as_json: bool, no_block: bool) -> None:
    """Cancel the running maintenance and follow it until it stopped (exit 1 if it
    failed meanwhile)."""

    async def work(backend: Backend) -> tuple[wire.Maintenance, dict[str, wire.Machine]]:
        record = await backend.cancel_maintenance()
        by_id = {m.id: m for m in await backend.list_machines()}
        say(
            f"Maintenance {record.id}: cancelled; the machines under way finish their step "
            "(a draining one is uncordoned, a rebooting one comes back), no other starts"
        )
        if no_block:
            return record, by_id
        record = await follow(backend, record.id, by_id)
        # A machine that was rebooting when it was cancelled is registered again by now.
        return record, {m.id: m for m in await backend.list_machines()}

    _report(*run(ctx, work), as_json=as_json, no_block=no_block, ended="cancelled")


def _report(
    record: wire.Maintenance,
    by_id: dict[str, wire.Machine],
    *,
    as_json: bool,
    no_block: bool,
    ended: str,
) -> None:
    """Print the record as followed (exit 1 unless it reached ``ended``)."""
    if as_json:
        echo_json(record.model_dump(mode="json"))
    elif not no_block:
        typer.echo(printable(final(record, by_id)), err=record.phase != ended)
    if not no_block and record.phase != ended:
        raise typer.Exit(1)


def _request(ctx: typer.Context, machine: str, as_json: bool) -> None:
    async def work(backend: Backend) -> tuple[wire.Machine, wire.RebootRequest]:
        target = resolve(machine, await backend.list_machines())
        return target, await backend.request_reboot(target.id)

    target, found = run(ctx, work)
    if as_json:
        echo_json(found.model_dump(mode="json"))
        return
    typer.echo(
        printable(
            f"Machine {describe(target)} asked for a reboot ({found.reason}): served when a "
            "slot of the reboot semaphore is free (fleetctl reboot --status)"
        )
    )


def register(app: typer.Typer) -> None:
    app.command("reboot", cls=Command)(reboot)
