"""fleetd's command-line flags: one ``--option`` per configuration option (``config.OPTIONS``).

Each option is listed once in ``--help``, as ``--etcd-servers`` with its
default; fleet's spelling ``--etcd_servers`` is accepted too (not listed).
A boolean option is a flag: ``--verbose`` sets it, ``--verbose=false``
clears it.  Values are left as strings: ``config.load`` parses them, with
the file and the environment, and says which source a bad one came from.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from fleetd import config

BOOL_CONST = "true"


def _is_bool(option: config.Option) -> bool:
    return isinstance(getattr(config.Config(), option.target), bool)


def default_text(option: config.Option) -> str:
    """The built-in default of ``option`` as a user would write it."""
    value = getattr(config.Config(), option.target)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "empty"
    if isinstance(value, float):
        return f"{value:g}s"
    if value is None:
        return "none"
    if value == "":
        return "empty"
    return str(value)


def add_options(parser: argparse.ArgumentParser) -> None:
    """One argument per configuration option (dest: the option's name; None when absent)."""
    for option in config.OPTIONS:
        dashed = f"--{option.name.replace('_', '-')}"
        text = f"{option.help} (default: {default_text(option)})"
        if _is_bool(option):
            parser.add_argument(
                dashed,
                dest=option.name,
                nargs="?",
                const=BOOL_CONST,
                metavar="true|false",
                help=text,
            )
        else:
            parser.add_argument(dashed, dest=option.name, metavar=option.name.upper(), help=text)
        underscored = f"--{option.name}"
        if underscored != dashed:
            parser.add_argument(
                underscored,
                dest=option.name,
                nargs="?" if _is_bool(option) else None,
                const=BOOL_CONST if _is_bool(option) else None,
                help=argparse.SUPPRESS,
            )


def given(args: argparse.Namespace, skip: tuple[str, ...] = ("config",)) -> Mapping[str, Any]:
    """The options set on the command line (name -> raw string)."""
    names = {option.name for option in config.OPTIONS}
    return {
        name: value
        for name, value in vars(args).items()
        if name in names and name not in skip and value is not None
    }
