"""``fleetctl history UNIT [--diff N]``: the kept versions of a unit's file.

The listing has one line per version, oldest first: its number, when and by
whom it was written, its hash and what changed since the version before it
(``+3 -1 lines; [Service] ExecStart changed``).  ``--diff N`` prints the
unified diff of version N against version N-1 (version 1 against nothing).
With ``-o json`` the listing is the API's ``UnitVersionList`` and the diff
``{"name", "version", "previous", "diff"}`` (cli/README.md).
"""

from __future__ import annotations

from typing import Annotated

import typer

from fleetd import versiondiff, versions
from fleetd.api import wire
from fleetd.unitname import UnitName

from . import completion
from .backend import Backend, CliError
from .helptext import Command
from .options import Output, options, run
from .table import echo_json, echo_table, printable
from .unitargs import unit_name

Diff = Annotated[
    int | None,
    typer.Option(
        "--diff",
        metavar="N",
        min=1,
        help="show the unified diff of version N against the version before it",
        show_default=False,
    ),
]
Unit = Annotated[
    str,
    typer.Argument(
        help="a unit name (or unit file path)",
        metavar="UNIT",
        show_default=False,
        autocompletion=completion.units,
    ),
]


def _by(version: wire.UnitVersionInfo) -> str:
    return f"{version.by} ({version.remote})" if version.remote else version.by


def _template(version: wire.UnitVersionInfo) -> str:
    if version.template is None:
        return "-"
    return f"{version.template.name} v{version.template.version}"


def _print_list(listing: wire.UnitVersionList, instance: bool) -> None:
    header = ["VERSION", "TIME", "BY", "HASH", *(["TEMPLATE"] if instance else []), "CHANGES"]
    rows = [
        [
            str(v.version),
            v.time or "-",
            _by(v),
            v.hash[:7],
            *([_template(v)] if instance else []),
            v.changes,
        ]
        for v in listing.versions
    ]
    echo_table(header, rows, legend=True)


def _note(listing: wire.UnitVersionList, exists: bool) -> str | None:
    if not exists:
        return f"{listing.name} does not exist now; these versions are kept from before"
    if listing.current is None:
        return (
            f"the current file of {listing.name} is not among its versions "
            "(it was written before versions were kept; its next change records it)"
        )
    return None


async def _diff(backend: Backend, name: str, number: int) -> tuple[int | None, str]:
    version = await backend.version(name, number)
    if version.previous is None and number > 1:
        raise CliError(
            f"version {number - 1} of {name} is no longer kept (only the last "
            f"{versions.KEEP} are): nothing to compare version {number} with"
        )
    if version.previous is None:
        return None, versiondiff.unified("", version.text, "/dev/null", f"{name} v{number}")
    before = await backend.version(name, version.previous)
    text = versiondiff.unified(
        before.text, version.text, f"{name} v{before.version}", f"{name} v{number}"
    )
    return before.version, text


def history(ctx: typer.Context, unit: Unit, diff: Diff = None) -> None:
    """List the kept versions of a unit's file (the last 20), or diff one (--diff N).

    Examples:
      fleetctl history web.service
      fleetctl history --diff 3 web.service
    """
    name = unit_name(unit)
    as_json = options(ctx).output is Output.JSON
    if diff is not None:
        number = diff

        async def diff_work(backend: Backend) -> tuple[int | None, str]:
            return await _diff(backend, name, number)

        previous, text = run(ctx, diff_work)
        if as_json:
            echo_json({"name": name, "version": number, "previous": previous, "diff": text})
        else:
            typer.echo(printable(text, keep="\n\t"), nl=False)
        return

    async def list_work(backend: Backend) -> tuple[wire.UnitVersionList, bool]:
        listing = await backend.versions(name)
        return listing, await backend.get_unit(name) is not None

    listing, exists = run(ctx, list_work)
    if as_json:
        echo_json(listing.model_dump(mode="json"))
        return
    _print_list(listing, UnitName.parse(listing.name).is_instance)
    note = _note(listing, exists)
    if note is not None:
        typer.echo(printable(note), err=True)


def register(app: typer.Typer) -> None:
    app.command("history", cls=Command)(history)
