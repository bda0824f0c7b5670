"""``fleetctl validate FILE...``: check unit files locally, without a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetd.errors import InvalidInput
from fleetd.unitcheck import check_unit

from . import shapes
from .helptext import Command
from .options import Output, options
from .table import echo_json


def verdict(path: Path) -> tuple[str, str | None, tuple[str, ...]]:
    """``(unit name, None, warnings)`` if the file at ``path`` is a valid unit, else
    ``(name, reason, ())``.

    The unit name is the file's base name, as ``fleetctl submit`` uses it.
    """
    name = path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        return name or str(path), f"cannot read {str(path)!r}: {exc.strerror or exc}", ()
    try:
        checked = check_unit(name, data)
    except InvalidInput as exc:
        return name, str(exc), ()
    return name, None, checked.warnings


def validate(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(
            help="unit files; each unit is named after its file",
            metavar="FILE...",
            show_default=False,
        ),
    ],
) -> None:
    """Check unit files: name, syntax, systemd's rules for the type, [X-Fleet] requirements.

    Prints "OK NAME" or "NAME: REASON" per file (with --output json, one
    object per file); exits 1 if any file is invalid.  What fleet accepted
    but looks like a mistake is accepted, with "WARNING: NAME: WARNING" on
    stderr (docs/unit-files.md lists the rules).  No cluster is needed.

    Examples:
      fleetctl validate web.service
      fleetctl validate units/*.service
    """
    results = []
    for path in files:
        name, reason, warnings = verdict(path)
        for warning in warnings:
            typer.echo(f"WARNING: {name}: {warning}", err=True)
        results.append((name, str(path), reason, warnings))
    if options(ctx).output is Output.JSON:
        echo_json([shapes.verdict(*result) for result in results])
    else:
        for name, _, reason, _ in results:
            typer.echo(f"OK {name}" if reason is None else f"{name}: {reason}")
    if any(reason is not None for _, _, reason, _ in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("validate", cls=Command)(validate)
