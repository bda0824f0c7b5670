"""Value syntax of the ``[X-Fleet]`` keys: booleans, machine ids, unit globs (pure).

Every parser takes the key as written so its error names it.
``fleetd.requirements`` re-exports everything public.
"""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache

from fleetd.errors import InvalidRequirements, InvalidUnitName
from fleetd.unitname import UnitName

# systemd's parse_boolean words.
_TRUE = frozenset({"1", "yes", "y", "true", "t", "on"})
_FALSE = frozenset({"0", "no", "n", "false", "f", "off"})
_MACHINE_ID = re.compile(r"[0-9a-f]{8}(?:[0-9a-f]{24})?\Z")
_GLOB_CHARS = re.compile(r"[^A-Za-z0-9:_.\\@*?\[\]!^-]")


def parse_bool(value: str, key: str) -> bool:
    """systemd's boolean words (``yes/no``, ``true/false``, ``on/off``, ``1/0``, ...)."""
    word = value.lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise InvalidRequirements(f"{key}={value}: not a boolean (use true or false)")


def parse_machine_id(value: str, key: str) -> str:
    """A machine id (32 hex digits, as in /etc/machine-id) or its first 8; lower-cased."""
    word = value.lower()
    if not _MACHINE_ID.match(word):
        raise InvalidRequirements(
            f"{key}={value}: not a machine ID (32 hex digits, or the first 8 of them)"
        )
    return word


def parse_glob(value: str, key: str) -> str:
    """A unit-name glob (``*``, ``?``, ``[...]``); without wildcards, a valid unit name."""
    if not any(ch in value for ch in "*?["):
        try:
            return UnitName.parse(value).name
        except InvalidUnitName as exc:
            raise InvalidRequirements(f"{key}={value}: {exc}") from exc
    if "/" in value:
        raise InvalidRequirements(f"{key}={value}: a unit-name pattern may not contain '/'")
    bad = _GLOB_CHARS.search(value)
    if bad:
        raise InvalidRequirements(
            f"{key}={value}: invalid character {bad.group()!r} in a unit-name pattern"
        )
    if not _brackets_balanced(value):
        raise InvalidRequirements(f"{key}={value}: unbalanced '[' ']' in the pattern")
    return value


def glob_matches(pattern: str, name: str) -> bool:
    """Whether unit ``name`` matches ``pattern`` (Go's path.Match syntax, as fleet)."""
    if not any(ch in pattern for ch in "*?["):
        return pattern == name
    return _compiled(pattern).match(name) is not None


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    # Go negates a class with '^', fnmatch with '!'.
    return re.compile(fnmatch.translate(pattern.replace("[^", "[!")))


def _brackets_balanced(value: str) -> bool:
    depth = 0
    for ch in value:
        if ch == "[":
            if depth:
                return False
            depth = 1
        elif ch == "]":
            if not depth:
                return False
            depth = 0
    return depth == 0
