"""The ``fleetd`` command: runs the daemon, or ``fleetd sandbox ...`` for the local cluster."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from fleetd import __version__, config, flags
from fleetd.errors import FleetError


def _daemon_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetd",
        usage="fleetd [--config FILE] [--OPTION VALUE ...] | fleetd sandbox|token|pki ...",
        description="fleetd: agent, engine candidate and REST API of one machine. "
        "Subcommands: `fleetd sandbox --help` (a local cluster of systemd machines), "
        "`fleetd token --help` (the API's scoped tokens), `fleetd pki --help` (the "
        "cluster's CA and certificates).",
        epilog="Every option can also be set in the config file (key = value) or as "
        "FLEETD_<OPTION> in the environment; flags win over the environment, which wins "
        "over the file.",
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
    if args and args[0] == "sandbox":
        from fleetd.sandbox.cli import app as sandbox_app

        sandbox_app(args[1:], prog_name="fleetd sandbox")
        return
    if args and args[0] == "token":
        from fleetd.tokencmd import app as token_app

        token_app(args[1:], prog_name="fleetd token")
        return
    if args and args[0] == "pki":
        from fleetd.pkicmd import app as pki_app

        pki_app(args[1:], prog_name="fleetd pki")
        return
    sys.exit(run_daemon(args))
