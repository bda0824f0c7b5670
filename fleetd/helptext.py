"""``--help`` of fleetd's command-line apps (fleetctl, ``fleetd sandbox|token|pki``),
laid out as fleet's, from the commands' own declarations.

typer's default help shows type placeholders (``<bool>``, ``<list[str]>``,
``{units}``); these command classes write instead a usage line with the
arguments' names (``UNIT...``), the docstring as written (its first paragraph
is the summary in the command list, the rest, examples included, is printed
verbatim), and one line per option with its value's name, default and
environment variable; a boolean option is a flag and shows no value.  An app
changes only its footers (``footer``) and its group's usage line
(``usage_pieces``) by subclassing.
"""

from __future__ import annotations

import inspect

from typer._click import Context, HelpFormatter, Parameter
from typer.core import TyperArgument, TyperCommand, TyperGroup


def _metavar(param: Parameter) -> str:
    if param.metavar:
        return param.metavar
    name = (param.name or "value").upper()
    return f"{name}..." if param.nargs != 1 else name


def _usage_pieces(params: list[Parameter]) -> list[str]:
    pieces = []
    for param in params:
        if isinstance(param, TyperArgument):
            name = _metavar(param)
            pieces.append(name if param.required else f"[{name}]")
    return pieces


def _shown_default(param: Parameter) -> str | None:
    if getattr(param, "is_flag", False) or not getattr(param, "show_default", True):
        return None
    default = param.default
    if default is None or default == "" or callable(default):
        return None
    value = getattr(default, "value", default)
    return str(value)


def _option_row(param: Parameter) -> tuple[str, str]:
    names = sorted(param.opts, key=lambda o: (o.startswith("--"), o))
    left = ", ".join(names)
    if not getattr(param, "is_flag", False):
        left += f" {_metavar(param)}"
    notes = []
    default = _shown_default(param)
    if default is not None:
        notes.append(f"default: {default}")
    envvar = param.envvar
    if envvar:
        notes.append(f"env: {envvar if isinstance(envvar, str) else ', '.join(envvar)}")
    text = str(getattr(param, "help", None) or "")
    if notes:
        text = f"{text} ({'; '.join(notes)})" if text else f"({'; '.join(notes)})"
    return left, text


def _argument_row(param: Parameter) -> tuple[str, str]:
    return _metavar(param), str(getattr(param, "help", None) or "")


def _verbatim(formatter: HelpFormatter, text: str) -> None:
    for line in inspect.cleandoc(text).splitlines():
        formatter.write(f"{' ' * (formatter.current_indent + 2)}{line}".rstrip() + "\n")


def _rows(params: list[Parameter]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    arguments = [_argument_row(p) for p in params if isinstance(p, TyperArgument)]
    options = [
        _option_row(p)
        for p in params
        if not isinstance(p, TyperArgument) and not getattr(p, "hidden", False)
    ]
    return arguments, options


def _footer(formatter: HelpFormatter, text: str) -> None:
    if text:
        formatter.write_paragraph()
        formatter.write_text(text)


def summary(help_text: str | None) -> str:
    """The first paragraph of a command's help, on one line."""
    first = inspect.cleandoc(help_text or "").split("\n\n", 1)[0]
    return " ".join(first.split())


class HelpCommand(TyperCommand):
    """A command with fleet-style help: usage, docstring verbatim, arguments, options."""

    def footer(self, ctx: Context) -> str:
        """The last paragraph: by default, where the group's own options go."""
        parent = ctx.parent
        if parent is None:
            return ""
        own = [p for p in parent.command.get_params(parent) if p.name != "help"]
        if not own:
            return ""
        return f"Options of '{parent.command_path}' go before the command (see its --help)."

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        return ["[OPTIONS]", *_usage_pieces(self.get_params(ctx))]

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        self.format_usage(ctx, formatter)
        if self.help:
            formatter.write_paragraph()
            _verbatim(formatter, self.help)
        arguments, options = _rows(self.get_params(ctx))
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        _footer(formatter, self.footer(ctx))

    def get_short_help_str(self, limit: int = 45) -> str:
        return summary(self.help)


class HelpGroup(TyperGroup):
    """A group of commands: its help, the list of commands, its own options."""

    command_class = HelpCommand
    options_title = "Options"
    usage_pieces: tuple[str, ...] = ("[OPTIONS]", "COMMAND", "[ARGS]...")

    def footer(self, ctx: Context) -> str:
        return f"Run '{ctx.command_path} COMMAND --help' for a command's options."

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        return list(self.usage_pieces)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        self.format_usage(ctx, formatter)
        if self.help:
            formatter.write_paragraph()
            _verbatim(formatter, self.help)
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, summary(command.help)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
        _, options = _rows(self.get_params(ctx))
        with formatter.section(self.options_title):
            formatter.write_dl(options)
        _footer(formatter, self.footer(ctx))
