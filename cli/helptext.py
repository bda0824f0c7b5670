"""fleetctl's ``--help``: fleetd's help classes (fleetd/helptext.py) with fleetctl's footers.

Global options may come before or after the command (``argv.reorder``), so
every command's help says so, and the command list ends with the
environment variables that set them.
"""

from __future__ import annotations

from typer._click import Context

from fleetd.helptext import HelpCommand, HelpGroup

__all__ = ["GLOBAL_HINT", "Command", "Group"]

GLOBAL_HINT = "Global options (see fleetctl --help) may come before or after the command."


class Command(HelpCommand):
    """A fleetctl command."""

    def footer(self, ctx: Context) -> str:
        return GLOBAL_HINT


class Group(HelpGroup):
    """fleetctl itself: global options and the list of commands."""

    command_class = Command
    options_title = "Global options"
    usage_pieces = ("[GLOBAL OPTIONS]", "COMMAND", "[OPTIONS]", "[ARGS]...")

    def footer(self, ctx: Context) -> str:
        return (
            "Run 'fleetctl COMMAND --help' for a command's options.  Every option can "
            "also be set as FLEETCTL_<OPTION> in the environment (FLEETCTL_ENDPOINT, ...)."
        )
