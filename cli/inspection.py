"""fleetctl's commands that look at one unit: cat, status, journal.

``status`` and ``journal`` are answered by the fleetd of the unit's machine,
which runs ``systemctl status`` / ``journalctl`` itself (no SSH).  As in
fleet, ``status`` exits with systemctl's exit status when it is not 0, and
``journal --output MODE`` is journalctl's output mode, not fleetctl's.
"""

from __future__ import annotations

from typing import Annotated

import typer

from fleetd.api import wire

from . import completion, shapes, unitargs
from .backend import Backend, CliError
from .helptext import Command
from .options import Output, fail, options, run
from .table import echo_json

Unit = Annotated[
    str,
    typer.Argument(
        help="unit name", metavar="UNIT", show_default=False, autocompletion=completion.units
    ),
]
UnitList = Annotated[
    list[str],
    typer.Argument(
        help="unit names", metavar="UNIT...", show_default=False, autocompletion=completion.units
    ),
]


def cat(ctx: typer.Context, unit: Unit) -> None:
    """Print the unit file as the cluster has it.

    Example:
      fleetctl cat web.service
    """
    name = unitargs.unit_name(unit)

    async def work(backend: Backend) -> wire.Unit:
        found = await backend.get_unit(name)
        if found is None:
            raise CliError(f"unit {name} not found")
        return found

    found = run(ctx, work)
    if options(ctx).output is Output.JSON:
        echo_json(shapes.unit_file(found))
        return
    from fleetd.unitfile import UnitFile

    text = UnitFile.from_options([(o.section, o.name, o.value) for o in found.options]).to_text()
    typer.echo(text, nl=False)


def status(ctx: typer.Context, units: UnitList) -> None:
    """Show 'systemctl status' of units, from the machines that run them (no SSH).

    Units are shown in order; the first one whose systemctl status is not 0
    ends the command, which then exits with that status (3: not running,
    4: no such unit), as fleet did.

    Examples:
      fleetctl status web.service
      fleetctl status web@1 web@2 || echo "not all running"
    """
    table = options(ctx).output is Output.TABLE

    async def work(backend: Backend) -> list[wire.UnitStatus]:
        found: list[wire.UnitStatus] = []
        for arg in units:
            item = await backend.status(unitargs.unit_name(arg))
            if table:
                if found:
                    typer.echo("")
                typer.echo(item.output, nl=not item.output.endswith("\n"))
            found.append(item)
            if item.exitCode != 0:
                break
        return found

    found = run(ctx, work)
    if not table:
        echo_json([shapes.unit_status(s) for s in found])
    code = next((s.exitCode for s in found if s.exitCode != 0), 0)
    if code:
        raise typer.Exit(code)


def journal(
    ctx: typer.Context,
    unit: Unit,
    lines: Annotated[
        int,
        typer.Option(
            "--lines", "-n", envvar="FLEETCTL_LINES", min=0, metavar="N", help="last N lines"
        ),
    ] = 10,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", envvar="FLEETCTL_FOLLOW", help="keep printing new lines"),
    ] = False,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="MODE",
            help="journalctl's output mode: " + ", ".join(wire.JOURNAL_OUTPUTS),
        ),
    ] = "short",
) -> None:
    """Print a unit's journal from the machine that runs it (no SSH).

    --output (or -o) after the command is journalctl's output mode, passed
    to journalctl on the unit's machine as fleet did.

    Examples:
      fleetctl journal web.service
      fleetctl journal --lines 100 --follow web.service
      fleetctl journal --output=cat web.service
    """
    name = unitargs.unit_name(unit)
    if output not in wire.JOURNAL_OUTPUTS:
        raise fail(f"--output {output!r}: journalctl's modes are {', '.join(wire.JOURNAL_OUTPUTS)}")

    async def work(backend: Backend) -> None:
        async for line in backend.journal(name, lines, follow, output):
            typer.echo(line)

    run(ctx, work)


def register(app: typer.Typer) -> None:
    for command in (cat, status, journal):
        app.command(command.__name__, cls=Command)(command)
