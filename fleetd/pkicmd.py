"""``fleetd pki ...``: a cluster's CA and certificates (fleetd/pki.py), made idempotently.

Each command says what it did with each file (created, kept, reissued) on
stdout; keys are written mode 0600.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from fleetd.errors import FleetError
from fleetd.etcd_auth import USER, ensure_auth
from fleetd.helptext import HelpCommand, HelpGroup
from fleetd.pki import Issued, Pki

app = typer.Typer(
    name="pki",
    cls=HelpGroup,
    help="""The cluster's CA and certificates: 'ca' once, then 'machine' and 'client'.

    Examples:
      fleetd pki ca /etc/fleet/pki
      fleetd pki machine /etc/fleet/pki m1 --ip 10.0.0.1 --dns m1.example.net
      fleetd pki client /etc/fleet/pki root
      fleetd pki etcd-auth /etc/fleet/pki https://10.0.0.1:2379
    """,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
DirArg = Annotated[
    Path, typer.Argument(metavar="DIRECTORY", help="the PKI directory (e.g. /etc/fleet/pki)")
]


def _fail(message: str) -> NoReturn:
    typer.echo(f"fleetd pki: {message}", err=True)
    raise typer.Exit(1)


def _say(what: str, issued: Issued) -> None:
    typer.echo(f"{what}: {issued.outcome.value} {issued.cert} (key {issued.key})")


@app.command(cls=HelpCommand)
def ca(directory: DirArg) -> None:
    """Create the cluster's CA in DIRECTORY (kept if it is there).

    Example:
      fleetd pki ca /etc/fleet/pki
    """
    try:
        _say("CA", Pki(directory).init_ca())
    except FleetError as exc:
        _fail(str(exc))


@app.command(cls=HelpCommand)
def machine(
    directory: DirArg,
    name: Annotated[str, typer.Argument(help="the machine's name")],
    ip: Annotated[
        list[str] | None,
        typer.Option(metavar="ADDRESS", help="an IP address of it (repeatable)"),
    ] = None,
    dns: Annotated[
        list[str] | None, typer.Option(metavar="NAME", help="a host name of it (repeatable)")
    ] = None,
) -> None:
    """A machine's certificate (etcd server and peer, the API's HTTPS, and their clients).

    Example:
      fleetd pki machine /etc/fleet/pki m1 --ip 10.0.0.1 --dns m1.example.net
    """
    try:
        _say(f"machine {name}", Pki(directory).issue_machine(name, ip or [], dns or []))
    except FleetError as exc:
        _fail(str(exc))


@app.command(cls=HelpCommand)
def client(
    directory: DirArg,
    name: Annotated[str, typer.Argument(help="common name: the etcd user (fleetd, root)")],
) -> None:
    """A client certificate (etcd takes its common name as the user name).

    Example:
      fleetd pki client /etc/fleet/pki root
    """
    try:
        _say(f"client {name}", Pki(directory).issue_client(name))
    except FleetError as exc:
        _fail(str(exc))


@app.command("etcd-auth", cls=HelpCommand)
def etcd_auth(
    directory: DirArg,
    endpoints: Annotated[
        list[str], typer.Argument(metavar="URL...", help="etcd client URLs (https://...)")
    ],
    prefix: Annotated[
        str, typer.Option(metavar="PREFIX", help="the registry prefix fleetd may touch")
    ] = "/fleet/",
    server_name: Annotated[
        str,
        typer.Option(
            metavar="NAME", help="the name every member's certificate carries (etcd_server_name)"
        ),
    ] = "",
    request_timeout: Annotated[
        float, typer.Option(help="seconds for each etcd request (more on slow machines)", min=0.1)
    ] = 10.0,
) -> None:
    """Turn etcd's authentication on as its root (DIRECTORY's clients/root
    certificate): the user fleetd (its certificate) may only read and write
    under --prefix.  Idempotent.

    Example:
      fleetd pki etcd-auth /etc/fleet/pki https://10.0.0.1:2379 https://10.0.0.2:2379
    """
    pki = Pki(directory)
    cert, key = pki.client("root")
    try:
        asyncio.run(
            ensure_auth(
                endpoints,
                ca_file=str(pki.ca_cert),
                cert_file=str(cert),
                key_file=str(key),
                prefix=prefix,
                server_name=server_name or None,
                request_timeout=request_timeout,
            )
        )
    except FleetError as exc:
        _fail(str(exc))
    typer.echo(f"etcd: authentication on; user {USER} may only touch {prefix}")
