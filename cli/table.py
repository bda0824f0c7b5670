"""Tables laid out like fleetctl's (Go ``tabwriter`` with tab padding), and JSON output.

fleetctl wrote its listings through ``tabwriter.NewWriter(out, 0, 8, 1, '\\t', 0)``:
each column is as wide as its widest cell plus one, rounded up to a multiple
of 8, and cells are padded with tabs; the last column is not padded.  Scripts
that split fleetctl's output on tabs keep working.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import typer

TAB_WIDTH = 8
# What must never reach the terminal raw: control characters (escape sequences),
# bidi overrides and lone surrogates.  Hostnames, metadata and error messages come
# from other machines and users.
_UNPRINTABLE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def printable(text: str, keep: str = "") -> str:
    """``text`` with unprintable characters (except those in ``keep``) as escapes (``\\x1b``)."""
    return _UNPRINTABLE.sub(
        lambda m: m.group() if m.group() in keep else ascii(m.group())[1:-1], text
    )


def _tabs(text: str, width: int) -> str:
    return "\t" * ((width - len(text) + TAB_WIDTH - 1) // TAB_WIDTH)


def render(header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    lines = [[printable(c) for c in line] for line in ([header] if header else []) + list(rows)]
    if not lines:
        return ""
    columns = max(len(line) for line in lines)
    widths = []
    for col in range(columns - 1):
        cell = max((len(line[col]) for line in lines if col < len(line) - 1), default=0) + 1
        widths.append((cell + TAB_WIDTH - 1) // TAB_WIDTH * TAB_WIDTH)
    out = []
    for line in lines:
        parts = [
            cell + _tabs(cell, widths[i]) if i < len(line) - 1 else cell
            for i, cell in enumerate(line)
        ]
        out.append("".join(parts))
    return "\n".join(out) + "\n"


def echo_table(header: Sequence[str], rows: Sequence[Sequence[str]], legend: bool) -> None:
    typer.echo(render(header if legend else None, rows), nl=False)


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def select(available: dict[str, str], fields: str | None, default: Sequence[str]) -> list[str]:
    """The columns ``--fields`` asks for (fleet's lower-case names), in order."""
    if not fields:
        return list(default)
    wanted = [f.strip().lower() for f in fields.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in available]
    if unknown or not wanted:
        raise typer.BadParameter(
            f"unknown field(s) {printable(', '.join(unknown)) or '(none)'}; "
            f"choose from {', '.join(available)}",
            param_hint="--fields",
        )
    return wanted
