"""``fleetd pki ...``: a cluster's CA and certificates (fleetd/pki.py), made idempotently.

Each command says what it did with each file (created, kept, reissued) on
stdout; keys are written mode 0600.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from fleetd.pki import Issued, Pki, PkiError

app = typer.Typer(
    name="pki",
    help="The cluster's CA and certificates: `ca`, then `machine` per machine and `client`s.",
    no_args_is_help=True,
    add_completion=False,
)
DirArg = Annotated[Path, typer.Argument(help="the PKI directory (e.g. /etc/fleet/pki)")]


def _fail(message: str) -> NoReturn:
    typer.echo(f"fleetd pki: {message}", err=True)
    raise typer.Exit(1)


def _say(what: str, issued: Issued) -> None:
    typer.echo(f"{what}: {issued.outcome.value} {issued.cert} (key {issued.key})")


@app.command()
def ca(directory: DirArg) -> None:
    """Create the cluster's CA in DIRECTORY (kept if it is there)."""
    try:
        _say("CA", Pki(directory).init_ca())
    except PkiError as exc:
        _fail(str(exc))


@app.command()
def machine(
    directory: DirArg,
    name: Annotated[str, typer.Argument(help="the machine's name")],
    ip: Annotated[list[str] | None, typer.Option(help="an IP address of it (repeatable)")] = None,
    dns: Annotated[list[str] | None, typer.Option(help="a host name of it (repeatable)")] = None,
) -> None:
    """A machine's certificate (etcd server and peer, the API's HTTPS, and their clients)."""
    try:
        _say(f"machine {name}", Pki(directory).issue_machine(name, ip or [], dns or []))
    except PkiError as exc:
        _fail(str(exc))


@app.command()
def client(
    directory: DirArg,
    name: Annotated[str, typer.Argument(help="common name: the etcd user (fleetd, root)")],
) -> None:
    """A client certificate (etcd takes its common name as the user name)."""
    try:
        _say(f"client {name}", Pki(directory).issue_client(name))
    except PkiError as exc:
        _fail(str(exc))
