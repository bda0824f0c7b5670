"""``fleetd token ...``: make, list and remove the API's scoped tokens (fleetd/tokens.py).

``add`` prints the new token's secret once, on stdout, and writes only its
SHA-256 to the file; a running fleetd picks the change up within a second.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from fleetd.caller import Role
from fleetd.errors import ConfigError
from fleetd.helptext import HelpCommand, HelpGroup
from fleetd.tokens import (
    DIGEST_PREFIX,
    add_token,
    check_secret,
    digest,
    parse_expiry,
    parse_tokens,
)
from fleetd.tokens import remove_token as _remove

app = typer.Typer(
    name="token",
    cls=HelpGroup,
    help="""The API's tokens: one a line of api_tokens_file, NAME ROLE sha256:HASH.

    Examples:
      fleetd token add /etc/fleet/tokens ci operate --expires 2027-01-01
      fleetd token list /etc/fleet/tokens
    """,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
FileArg = Annotated[Path, typer.Argument(metavar="FILE", help="the tokens file (api_tokens_file)")]


def _fail(message: str) -> NoReturn:
    typer.echo(f"fleetd token: {message}", err=True)
    raise typer.Exit(1)


@app.command(cls=HelpCommand)
def add(
    file: FileArg,
    name: Annotated[str, typer.Argument(help="who uses it (versions and the audit log say so)")],
    role: Annotated[str, typer.Argument(help="read, operate or admin")],
    expires: Annotated[
        str,
        typer.Option(metavar="WHEN", help="ISO date or time at which it stops working (UTC)"),
    ] = "",
) -> None:
    """Add a new token; print its secret (shown only this once) on stdout.

    Example:
      fleetd token add /etc/fleet/tokens deploy-bot operate > deploy-bot.token
    """
    try:
        when: datetime | None = parse_expiry(expires, "--expires") if expires else None
        secret = add_token(file, name, Role.parse(role), when)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(secret)
    typer.echo(f"added token {name!r} ({role}) to {file}", err=True)


@app.command(cls=HelpCommand)
def remove(file: FileArg, name: Annotated[str, typer.Argument(help="the token's name")]) -> None:
    """Remove a token: it stops working within a second on every fleetd reading the file.

    Example:
      fleetd token remove /etc/fleet/tokens deploy-bot
    """
    try:
        found = _remove(file, name)
    except ConfigError as exc:
        _fail(str(exc))
    if not found:
        _fail(f"no token named {name!r} in {file}")
    typer.echo(f"removed token {name!r} from {file}", err=True)


@app.command("list", cls=HelpCommand)
def list_tokens(file: FileArg) -> None:
    """The tokens' names, roles and ends (never their secrets).

    Example:
      fleetd token list /etc/fleet/tokens
    """
    try:
        tokens = parse_tokens(file.read_text(encoding="utf-8"), str(file))
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {file}: {exc}")
    except ConfigError as exc:
        _fail(str(exc))
    typer.echo(f"{'NAME':24} {'ROLE':8} EXPIRES")
    for token in tokens:
        end = token.expires.isoformat() if token.expires else "-"
        typer.echo(f"{token.name:24} {token.role.label:8} {end}")


@app.command("hash", cls=HelpCommand)
def hash_secret() -> None:
    """Read a secret on stdin; print the sha256: form to put in the file instead of it.

    Example:
      fleetd token hash < deploy-bot.token
    """
    secret = sys.stdin.readline().strip()
    try:
        check_secret(secret, "stdin")
    except ConfigError as exc:
        _fail(str(exc))
    typer.echo(f"{DIGEST_PREFIX}{digest(secret)}")
