"""``fleetctl``: the typer app.

Each group of commands lives in its own module of ``fleetd.cli`` and exposes
``register(app)``; this module only builds the app and lists the modules.
"""

from __future__ import annotations

import typer
from fleetd.cli import validate

from fleetd import __version__

app = typer.Typer(
    name="fleetctl",
    help="Drive a fleetd cluster: submit, start and inspect systemd units.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fleetctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Drive a fleetd cluster: submit, start and inspect systemd units."""


for _module in (validate,):
    _module.register(app)


def main() -> None:
    """Entry point of the ``fleetctl`` script."""
    app(prog_name="fleetctl")
