"""``fleetctl``: the typer app.

Each group of commands lives in its own module of ``fleetd.cli`` and exposes
``register(app)``; this module only builds the app and lists the modules.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer
from fleetd.cli import history, listing, units, validate
from fleetd.cli.options import DEFAULT_ENDPOINT, GLOBAL_FLAGS, Driver, GlobalOptions, Output

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
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
    endpoint: str = typer.Option(
        DEFAULT_ENDPOINT,
        envvar="FLEETCTL_ENDPOINT",
        help="fleetd API: unix:///path or http(s)://host:port",
    ),
    driver: Annotated[
        Driver,
        typer.Option(envvar="FLEETCTL_DRIVER", help="api (fleetd's API) or etcd (the registry)"),
    ] = Driver.API,
    etcd_endpoints: str = typer.Option(
        "http://127.0.0.1:2379",
        envvar="FLEETCTL_ETCD_ENDPOINTS",
        help="etcd URLs, comma separated (--driver etcd)",
    ),
    etcd_key_prefix: str = typer.Option(
        "/fleet/", envvar="FLEETCTL_ETCD_KEY_PREFIX", help="registry key prefix (--driver etcd)"
    ),
    token: str | None = typer.Option(
        None, envvar="FLEETCTL_TOKEN", help="bearer token for a TCP endpoint", show_default=False
    ),
    request_timeout: float = typer.Option(
        30.0, envvar="FLEETCTL_REQUEST_TIMEOUT", min=0.1, help="seconds per request"
    ),
    output: Annotated[
        Output, typer.Option("--output", "-o", envvar="FLEETCTL_OUTPUT", help="table or json")
    ] = Output.TABLE,
) -> None:
    """Drive a fleetd cluster: submit, start and inspect systemd units."""
    ctx.obj = GlobalOptions(
        endpoint=endpoint,
        driver=driver,
        etcd_endpoints=etcd_endpoints,
        etcd_key_prefix=etcd_key_prefix,
        token=token or None,
        request_timeout=request_timeout,
        output=output,
    )


for _module in (validate, units, listing, history):
    _module.register(app)


def reorder(argv: Sequence[str]) -> list[str]:
    """Move global options written after the command in front of it (fleet accepted both)."""
    args = list(argv)
    command = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if command is None:
        return args
    head, tail = args[:command], args[command:]
    moved: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(tail):
        arg = tail[i]
        if arg == "--":
            rest.extend(tail[i:])
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_FLAGS and i > 0:
            moved.append(arg)
            if "=" not in arg and i + 1 < len(tail):
                moved.append(tail[i + 1])
                i += 1
        else:
            rest.append(arg)
        i += 1
    return head + moved + rest


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``fleetctl`` script: exit 0 on success, 1 on any failure
    (click's usage errors, normally 2, included), with the message on stderr."""
    args = reorder(sys.argv[1:] if argv is None else argv)
    try:
        app(args=args, prog_name="fleetctl")
    except SystemExit as exc:
        if exc.code == 2:
            sys.exit(1)
        raise
