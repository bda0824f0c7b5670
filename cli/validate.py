"""``fleetctl validate FILE...``: check unit files locally, without a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetd.errors import InvalidInput
from fleetd.requirements import parse_unit


def verdict(path: Path) -> tuple[str, str | None]:
    """``(unit name, None)`` if the file at ``path`` is a valid unit, else ``(name, reason)``.

    The unit name is the file's base name, as ``fleetctl submit`` uses it.
    """
    name = path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        return name or str(path), f"cannot read {str(path)!r}: {exc.strerror or exc}"
    try:
        parse_unit(name, data)
    except InvalidInput as exc:
        return name, str(exc)
    return name, None


def validate(
    files: Annotated[
        list[Path],
        typer.Argument(help="unit files; each unit is named after its file", show_default=False),
    ],
) -> None:
    """Check unit files: name, syntax and [X-Fleet] requirements.

    Prints "OK <name>" or "<name>: <reason>" per file; exits 1 if any file is invalid.
    """
    failed = False
    for path in files:
        name, reason = verdict(path)
        if reason is None:
            typer.echo(f"OK {name}")
        else:
            failed = True
            typer.echo(f"{name}: {reason}")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
