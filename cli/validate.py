"""``fleetctl validate FILE...``: check unit files locally, without a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetd.errors import InvalidInput
from fleetd.unitcheck import check_unit


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
    files: Annotated[
        list[Path],
        typer.Argument(help="unit files; each unit is named after its file", show_default=False),
    ],
) -> None:
    """Check unit files: name, syntax, systemd's rules for the type, [X-Fleet] requirements.

    Prints "OK <name>" or "<name>: <reason>" per file; exits 1 if any file is invalid.
    What fleet accepted but looks like a mistake is accepted, with "WARNING: <name>:
    <warning>" on stderr (docs/unit-files.md lists the rules).
    """
    failed = False
    for path in files:
        name, reason, warnings = verdict(path)
        for warning in warnings:
            typer.echo(f"WARNING: {name}: {warning}", err=True)
        if reason is None:
            typer.echo(f"OK {name}")
        else:
            failed = True
            typer.echo(f"{name}: {reason}")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
