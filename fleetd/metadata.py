"""``MachineMetadata=`` conditions: parse and match against a machine (pure).

Semantics: keys are AND-ed; several ``=`` conditions on one key are OR-ed
(fleet's rule); ``!=`` excludes a value (a machine without the key passes);
``>= <= > <`` compare numbers and need the key to be set to a number.
``fleetd.requirements`` re-exports everything public.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from fleetd.errors import InvalidRequirements


class MetadataOp(StrEnum):
    EQ = "="
    NE = "!="
    GE = ">="
    LE = "<="
    GT = ">"
    LT = "<"


@dataclass(frozen=True, slots=True)
class MetadataCondition:
    """``key op value``; for ``=`` several conditions on one key are OR-ed, keys are AND-ed."""

    key: str
    op: MetadataOp
    value: str

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"


_CONDITION = re.compile(r"([A-Za-z0-9_.-]+)\s*(!=|>=|<=|=|>|<)\s*(.*)\Z", re.DOTALL)
_NUMERIC = {
    MetadataOp.GE: float.__ge__,
    MetadataOp.LE: float.__le__,
    MetadataOp.GT: float.__gt__,
    MetadataOp.LT: float.__lt__,
}


def parse_metadata_condition(word: str, key: str = "MachineMetadata") -> MetadataCondition:
    """``rack=a``, ``rack!=a``, ``cores>=4`` ... -> MetadataCondition.

    Raises InvalidRequirements naming ``key`` and the word.
    """
    m = _CONDITION.match(word)
    if not m:
        raise InvalidRequirements(
            f"{key}={word}: expected key=value, key!=value or a numeric comparison "
            "(key>=n, key<=n, key>n, key<n); keys are letters, digits and _ . -"
        )
    name, op, value = m.group(1), MetadataOp(m.group(2)), m.group(3)
    if not value:
        raise InvalidRequirements(f"{key}={word}: no value after {op.value!r}")
    if value[0] in "=<>!":
        raise InvalidRequirements(f"{key}={word}: malformed operator (use = != >= <= > <)")
    if op in _NUMERIC and _number(value) is None:
        raise InvalidRequirements(f"{key}={word}: {op.value} needs a number, got {value!r}")
    return MetadataCondition(name, op, value)


def metadata_matches(
    conditions: tuple[MetadataCondition, ...], metadata: Mapping[str, str]
) -> str | None:
    """None if ``metadata`` satisfies every condition, else the first reason it does not.

    E.g. ``"metadata rack=a wanted, rack=b"`` or ``"metadata disk=ssd wanted, disk not set"``.
    """
    if not conditions:
        return None
    for check in _plan(tuple(conditions)):
        value = metadata.get(check.key)
        reason = check.reject(value)
        if reason is not None:
            return reason
    return None


@dataclass(frozen=True, slots=True)
class _KeyCheck:
    key: str
    allowed: frozenset[str] | None  # OR of the = conditions
    allowed_text: str
    denied: frozenset[str]
    numeric: tuple[tuple[MetadataCondition, float], ...]

    def reject(self, value: str | None) -> str | None:
        have = f"{self.key} not set" if value is None else f"{self.key}={value}"
        if self.allowed is not None and value not in self.allowed:
            return f"metadata {self.allowed_text} wanted, {have}"
        if value is not None and value in self.denied:
            return f"metadata {self.key}!={value} wanted, {have}"
        for cond, bound in self.numeric:
            number = None if value is None else _number(value)
            if number is None:
                suffix = "" if value is None else " is not a number"
                return f"metadata {cond} wanted, {have}{suffix}"
            if not _NUMERIC[cond.op](number, bound):
                return f"metadata {cond} wanted, {have}"
        return None


@lru_cache(maxsize=4096)
def _plan(conditions: tuple[MetadataCondition, ...]) -> tuple[_KeyCheck, ...]:
    keys = list(dict.fromkeys(c.key for c in conditions))
    checks = []
    for key in keys:
        mine = [c for c in conditions if c.key == key]
        eq = [c.value for c in mine if c.op is MetadataOp.EQ]
        checks.append(
            _KeyCheck(
                key=key,
                allowed=frozenset(eq) if eq else None,
                allowed_text=f"{key}={'|'.join(dict.fromkeys(eq))}",
                denied=frozenset(c.value for c in mine if c.op is MetadataOp.NE),
                numeric=tuple(
                    (c, float(c.value))
                    for c in mine
                    if c.op in _NUMERIC and _number(c.value) is not None
                ),
            )
        )
    return tuple(checks)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
