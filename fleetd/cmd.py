"""The ``fleetd`` command: runs the daemon, or ``fleetd sandbox ...`` for the local cluster."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fleetd import __version__, config, flags
from fleetd.errors import FleetError

if TYPE_CHECKING:
    import typer

# fleetd's subcommands: name -> (module whose ``app`` runs it, what it is for).
SUBCOMMANDS = {
    "sandbox": ("fleetd.sandbox.cli", "a local cluster of real systemd machines"),
    "token": ("fleetd.tokencmd", "the API's scoped tokens"),
    "pki": ("fleetd.pkicmd", "the cluster's CA and certificates"),
}

_EPILOG = """\
Subcommands (each with its own --help):
{subcommands}

Every option can also be set in the config file (key = value) or as
FLEETD_<OPTION> in the environment; flags win over the environment, which
wins over the file.

Examples:
  fleetd --etcd-servers http://10.0.0.1:2379 --metadata rack=a,disk=ssd
  fleetd --config /etc/fleet/fleet.conf --verbose
  fleetd sandbox up --machines 3
"""


def subcommand_app(name: str) -> typer.Typer:
    """The typer app of ``fleetd NAME`` (imported only when it is run)."""
    app: typer.Typer = importlib.import_module(SUBCOMMANDS[name][0]).app
    return app


def _daemon_parser() -> argparse.ArgumentParser:
    subcommands = "\n".join(f"  fleetd {name:8} {what}" for name, (_, what) in SUBCOMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="fleetd",
        usage=f"fleetd [--config FILE] [--OPTION VALUE ...] | fleetd {'|'.join(SUBCOMMANDS)} ...",
        description="fleetd: agent, engine candidate and REST API of one machine.",
        epilog=_EPILOG.format(subcommands=subcommands),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", metavar="FILE", help=f"config file (default: {config.DEFAULT_CONFIG_FILE})"
    )
    parser.add_argument("--version", action="version", version=f"fleetd {__version__}")
    flags.add_options(parser)
    return parser


def _setup_logging(verbose: bool) -> None:
    """To the journal with structured fields under systemd (the audit log's fields,
    api/audit.py), else timestamped lines on stderr."""
    from fleetd.journald import JournalHandler, under_journald

    level = logging.DEBUG if verbose else logging.INFO
    if under_journald():
        handler: logging.Handler = JournalHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=level, handlers=[handler])
        return
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_daemon(argv: Sequence[str]) -> int:
    args = _daemon_parser().parse_args(list(argv))
    try:
        cfg = config.load(args.config, env=os.environ, flags=flags.given(args))
    except FleetError as exc:
        print(f"fleetd: {exc}", file=sys.stderr)
        return 2
    _setup_logging(cfg.verbose)
    from fleetd.server import Server

    try:
        return asyncio.run(Server(cfg).run())
    except FleetError as exc:
        logging.getLogger("fleetd").error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        subcommand_app(args[0])(args[1:], prog_name=f"fleetd {args[0]}")
        return
    sys.exit(run_daemon(args))
