"""Value syntax of the ``[X-Fleet]`` keys: booleans, machine ids, unit globs (pure).

Every parser takes the key as written so its error names it.
``fleetd.requirements`` re-exports everything public.
"""

from __future__ import annotations

import re
from functools import lru_cache

from fleetd.errors import InvalidRequirements, InvalidUnitName
from fleetd.unitname import UnitName

# systemd's parse_boolean words.
_TRUE = frozenset({"1", "yes", "y", "true", "t", "on"})
_FALSE = frozenset({"0", "no", "n", "false", "f", "off"})
_FLEET_TRUE = frozenset({"true", "yes", "1", "on", "t"})
_MACHINE_ID = re.compile(r"[0-9a-f]{8}(?:[0-9a-f]{24})?\Z")
_GLOB_CHARS = re.compile(r"[^A-Za-z0-9:_.\\@*?\[\]!^-]")
GLOB_SPECIAL = "*?[\\"
"""The characters that make a ``Conflicts=``/``Replaces=`` value a pattern (Go's ``path.Match``)."""


def parse_bool(value: str, key: str) -> bool:
    """systemd's boolean words (``yes/no``, ``true/false``, ``on/off``, ``1/0``, ...)."""
    word = value.lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise InvalidRequirements(f"{key}={value}: not a boolean (use true or false)")


def fleet_truthy(value: str) -> bool:
    """fleet's reading of ``Global=``: true for ``true yes 1 on t`` (any case), else false."""
    return value.lower() in _FLEET_TRUE


def parse_machine_id(value: str, key: str) -> str:
    """A machine id (32 hex digits, as in /etc/machine-id) or its first 8; lower-cased."""
    word = value.lower()
    if not _MACHINE_ID.match(word):
        raise InvalidRequirements(
            f"{key}={value}: not a machine ID (32 hex digits, or the first 8 of them)"
        )
    return word


def parse_glob(value: str, key: str) -> str:
    """A unit-name glob (``*``, ``?``, ``[...]``); without wildcards, a valid unit name.

    This is fleetd's rule for a pattern that can match a unit; fleet took any
    string as a pattern, so ``fleetd.requirements`` turns this error into a
    warning and keeps the pattern (``glob_matches`` then does what fleet did).
    """
    if not is_glob(value):
        try:
            return UnitName.parse(value).name
        except InvalidUnitName as exc:
            raise InvalidRequirements(f"{key}={value}: {exc}") from exc
    if "/" in value:
        raise InvalidRequirements(f"{key}={value}: a unit-name pattern may not contain '/'")
    if _compiled(value) is None:
        raise InvalidRequirements(
            f"{key}={value}: malformed pattern (an unbalanced '[', an empty class "
            "or a trailing '\\')"
        )
    bad = _GLOB_CHARS.search(value)
    if bad:
        raise InvalidRequirements(
            f"{key}={value}: invalid character {bad.group()!r} in a unit-name pattern"
        )
    return value


def is_glob(pattern: str) -> bool:
    """Whether ``pattern`` has any of Go's ``path.Match`` special characters."""
    return any(ch in pattern for ch in GLOB_SPECIAL)


def is_pattern(pattern: str) -> bool:
    """Whether Go's ``path.Match`` can read ``pattern`` (False: it is malformed)."""
    return _compiled(pattern) is not None


def glob_matches(pattern: str, name: str) -> bool:
    """Whether unit ``name`` matches ``pattern`` as Go's ``path.Match`` says (fleet's rule).

    ``*`` is any run of characters, ``?`` one character, ``[a-z]`` and
    ``[^a-z]`` classes, ``\\`` escapes the next character; without them the
    pattern matches only the name it spells (``apache`` matches a unit named
    ``apache``, never ``apache.service``).  A malformed pattern matches nothing,
    as fleet ignored ``path.Match``'s error.
    """
    if not is_glob(pattern):
        return pattern == name
    compiled = _compiled(pattern)
    return compiled is not None and compiled.fullmatch(name) is not None


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    """The regular expression for a Go ``path.Match`` pattern; None if it is malformed."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            cls = _class(pattern, i + 1)
            if cls is None:
                return None
            text, i = cls
            out.append(text)
        else:
            char = _char(pattern, i)
            if char is None:
                return None
            literal, i = char
            out.append(re.escape(literal))
    return re.compile("".join(out), re.DOTALL)


def _char(pattern: str, i: int) -> tuple[str, int] | None:
    """One literal character at ``i`` (``\\x`` is ``x``) and the index after it."""
    if pattern[i] == "\\":
        i += 1
        if i == len(pattern):
            return None
    return pattern[i], i + 1


def _class(pattern: str, i: int) -> tuple[str, int] | None:
    """The class whose body starts at ``i`` (after ``[``) as a regular expression."""
    negated = i < len(pattern) and pattern[i] == "^"
    i += negated
    ranges: list[tuple[str, str]] = []
    while True:
        if i < len(pattern) and pattern[i] == "]" and ranges:
            i += 1
            break
        if i == len(pattern) or pattern[i] in "-]":
            return None
        low = _char(pattern, i)
        if low is None:
            return None
        lo, i = low
        hi = lo
        if i < len(pattern) and pattern[i] == "-":
            if i + 1 == len(pattern) or pattern[i + 1] in "-]":
                return None
            high = _char(pattern, i + 1)
            if high is None:
                return None
            hi, i = high
        ranges.append((lo, hi))
    body = "".join(f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in ranges if lo <= hi)
    if not body:  # only empty ranges (z-a): the class holds no character
        return ("[^/]" if negated else "(?!)"), i
    return f"[{'^' if negated else ''}{body}]", i
