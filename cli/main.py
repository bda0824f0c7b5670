"""``fleetctl``: the typer app.

Each group of commands lives in its own module of ``fleetd.cli`` and exposes
``register(app)``; this module only builds the app, lists the modules and
runs it (``main``): global options are put in front of the command first
(``argv.reorder``), and every error is printed without a secret in it.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from fleetd import __version__
from fleetd.cli import (
    config,
    history,
    inspection,
    listing,
    machines,
    maintenance,
    plan,
    restart,
    rollouts,
    units,
    validate,
)
from fleetd.cli.argv import redact, reorder, secrets
from fleetd.cli.helptext import Command, Group
from fleetd.cli.options import DEFAULT_ENDPOINT, Driver, GlobalOptions, Output

__all__ = ["app", "main", "reorder"]

app = typer.Typer(
    name="fleetctl",
    cls=Group,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fleetctl version {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
    endpoint: str = typer.Option(
        DEFAULT_ENDPOINT,
        "--endpoint",
        envvar="FLEETCTL_ENDPOINT",
        metavar="URL",
        help="fleetd API: unix:///path or http(s)://host:port",
    ),
    driver: Annotated[
        Driver,
        typer.Option(
            "--driver",
            envvar="FLEETCTL_DRIVER",
            metavar="api|etcd",
            help="api (fleetd's API) or etcd (the registry)",
        ),
    ] = Driver.API,
    etcd_endpoints: str = typer.Option(
        "http://127.0.0.1:2379",
        "--etcd-endpoints",
        envvar="FLEETCTL_ETCD_ENDPOINTS",
        metavar="URLS",
        help="etcd URLs, comma separated (--driver etcd)",
    ),
    etcd_key_prefix: str = typer.Option(
        "/fleet/",
        "--etcd-key-prefix",
        envvar="FLEETCTL_ETCD_KEY_PREFIX",
        metavar="PREFIX",
        help="registry key prefix (--driver etcd)",
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="FLEETCTL_TOKEN",
        metavar="TOKEN",
        help="bearer token for a TCP endpoint",
        show_default=False,
    ),
    ca_file: str = typer.Option(
        "",
        "--ca-file",
        envvar="FLEETCTL_CA_FILE",
        metavar="FILE",
        help="CA to verify an https:// endpoint (and etcd) with; default: the system's",
        show_default=False,
    ),
    cert_file: str = typer.Option(
        "",
        "--cert-file",
        envvar="FLEETCTL_CERT_FILE",
        metavar="FILE",
        help="client certificate for an https:// endpoint (and etcd)",
        show_default=False,
    ),
    key_file: str = typer.Option(
        "",
        "--key-file",
        envvar="FLEETCTL_KEY_FILE",
        metavar="FILE",
        help="key of --cert-file",
        show_default=False,
    ),
    etcd_username: str = typer.Option(
        "",
        "--etcd-username",
        envvar="FLEETCTL_ETCD_USERNAME",
        metavar="USER",
        help="etcd user (--driver etcd)",
        show_default=False,
    ),
    etcd_password: str = typer.Option(
        "",
        "--etcd-password",
        envvar="FLEETCTL_ETCD_PASSWORD",
        metavar="PASSWORD",
        help="etcd password (--driver etcd; better: FLEETCTL_ETCD_PASSWORD)",
        show_default=False,
    ),
    etcd_server_name: str = typer.Option(
        "",
        "--etcd-server-name",
        envvar="FLEETCTL_ETCD_SERVER_NAME",
        metavar="NAME",
        help="name every etcd member's certificate carries (several https:// "
        "--etcd-endpoints by IP; provision.sh: fleetd-etcd)",
        show_default=False,
    ),
    request_timeout: float = typer.Option(
        30.0,
        "--request-timeout",
        envvar="FLEETCTL_REQUEST_TIMEOUT",
        min=0.1,
        metavar="SECONDS",
        help="seconds per request",
    ),
    output: Annotated[
        Output,
        typer.Option(
            "--output",
            "-o",
            envvar="FLEETCTL_OUTPUT",
            metavar="table|json",
            help="table, or json (shapes: api/README.md)",
        ),
    ] = Output.TABLE,
) -> None:
    """fleetctl drives a fleetd cluster: submit, start and inspect systemd units.

    Examples:
      fleetctl start web.service
      fleetctl --endpoint http://10.0.0.1:14002 --token "$TOKEN" list-units
      fleetctl list-machines -o json
    """
    ctx.obj = GlobalOptions(
        endpoint=endpoint,
        driver=driver,
        etcd_endpoints=etcd_endpoints,
        etcd_key_prefix=etcd_key_prefix,
        token=token or None,
        request_timeout=request_timeout,
        output=output,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        etcd_username=etcd_username,
        etcd_password=etcd_password,
        etcd_server_name=etcd_server_name,
    )


def version() -> None:
    """Print fleetctl's version and exit.

    Example:
      fleetctl version
    """
    typer.echo(f"fleetctl version {__version__}")


for _module in (
    validate,
    units,
    plan,
    restart,
    rollouts,
    inspection,
    history,
    listing,
    machines,
    maintenance,
    config,
):
    _module.register(app)
app.command("version", cls=Command)(version)


def _message(exc: typer.TyperException) -> str:
    buffer = io.StringIO()
    show = getattr(exc, "show", None)
    if callable(show):
        show(file=buffer)
    else:
        buffer.write(f"Error: {exc.format_message()}\n")
    return buffer.getvalue()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``fleetctl`` script: exit 0 on success, 1 on any failure
    (click's usage errors, normally 2, included), with the message on stderr; a
    command may exit with another status of its own (``status``: systemctl's;
    ``plan``: 3 for every failure, usage errors included)."""
    raw = list(sys.argv[1:] if argv is None else argv)
    hidden = secrets(raw, os.environ)
    try:
        result = app(args=reorder(raw), prog_name="fleetctl", standalone_mode=False)
    except typer.TyperException as exc:
        sys.stderr.write(redact(_message(exc), hidden))
        sys.exit(getattr(exc, "fleetctl_status", 1))
    except typer.Abort:
        sys.stderr.write("Aborted.\n")
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
