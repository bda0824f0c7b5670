"""What changed between two versions of a unit file: a one-line summary and a unified diff (pure).

The summary counts changed lines and names the settings that were added,
removed or changed, by section: ``+3 -1 lines; [Service] ExecStart changed,
[X-Fleet] Global added``.  Texts are the normalised unit files the registry
keeps, so the diff shows what systemd will see, not the user's formatting.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from fleetd.errors import InvalidInput
from fleetd.unitfile import UnitFile

MAX_NAMED = 3
"""Settings named in a summary before the rest are counted (``and 4 more``)."""


@dataclass(frozen=True, slots=True)
class Summary:
    added: int
    removed: int
    line: str


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _settings(text: str) -> dict[tuple[str, str], list[str]]:
    try:
        unit = UnitFile.from_text(text)
    except InvalidInput:
        return {}
    found: dict[tuple[str, str], list[str]] = {}
    for option in unit.options:
        found.setdefault((option.section, option.name), []).append(option.value)
    return found


def _setting_changes(before: str, after: str) -> list[str]:
    old, new = _settings(before), _settings(after)
    changes = []
    for (section, name), values in new.items():
        if (section, name) not in old:
            changes.append(f"[{section}] {name} added")
        elif old[(section, name)] != values:
            changes.append(f"[{section}] {name} changed")
    changes.extend(f"[{s}] {n} removed" for (s, n) in old if (s, n) not in new)
    return changes


def summarize(before: str, after: str) -> Summary:
    """How ``after`` differs from ``before``, in one line."""
    matcher = difflib.SequenceMatcher(None, _lines(before), _lines(after), autojunk=False)
    added = removed = 0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            removed += i2 - i1
        if tag in ("replace", "insert"):
            added += j2 - j1
    line = f"+{added} -{removed} lines"
    settings = _setting_changes(before, after)
    if settings:
        named = ", ".join(settings[:MAX_NAMED])
        more = len(settings) - MAX_NAMED
        line += f"; {named}" + (f" and {more} more" if more > 0 else "")
    elif not added and not removed:
        line = "no change"
    return Summary(added, removed, line)


def first(text: str) -> Summary:
    """The summary of a first version (nothing before it)."""
    count = len(_lines(text))
    return Summary(count, 0, f"first version ({count} lines)")


def unified(before: str, after: str, before_label: str, after_label: str) -> str:
    """The unified diff of ``before`` -> ``after`` with 3 lines of context ('' if equal)."""
    diff = difflib.unified_diff(
        _lines(before), _lines(after), fromfile=before_label, tofile=after_label
    )
    out = []
    for line in diff:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)
