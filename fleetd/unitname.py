"""Unit names by systemd's rules, templates and instances, specifiers (pure).

A unit name becomes a file name on every machine, so anything systemd would
refuse (or that could escape the units directory) is rejected here with a
message naming the rule.  ``fleetd.unitfile`` re-exports everything public.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleetd.errors import InvalidUnitFile, InvalidUnitName

# systemd's UNIT_NAME_MAX is 256 including the terminating NUL.
MAX_NAME_LENGTH = 255
UNIT_TYPES = (
    "service",
    "socket",
    "device",
    "mount",
    "automount",
    "swap",
    "target",
    "path",
    "timer",
    "slice",
    "scope",
)
_SUFFIXES = ", ".join(f".{t}" for t in UNIT_TYPES)
_INVALID_CHAR = re.compile(r"[^A-Za-z0-9:_.\\@-]")


@dataclass(frozen=True, slots=True)
class UnitName:
    """A valid unit name split into its parts (``foo@1.service``: prefix ``foo``,
    instance ``1``, type ``service``).  Build it with ``UnitName.parse``.

    As in systemd, the instance is everything after the first ``@``
    (``a@b@c.service``: prefix ``a``, instance ``b@c``)."""

    name: str
    prefix: str
    instance: str
    type: str
    is_template: bool = False

    @classmethod
    def parse(cls, name: str) -> UnitName:
        """Validate ``name``; raise InvalidUnitName naming the broken rule."""
        _check(name)
        stem, _, type_ = name.rpartition(".")
        prefix, at, instance = stem.partition("@")
        return cls(name, prefix, instance, type_, is_template=bool(at) and not instance)

    @property
    def suffix(self) -> str:
        """The type suffix with its dot: ``.service``."""
        return f".{self.type}"

    @property
    def stem(self) -> str:
        """The name without its type suffix (systemd's ``%N``): ``foo@1``."""
        return self.name[: -len(self.suffix)]

    @property
    def is_instance(self) -> bool:
        return bool(self.instance)

    @property
    def template(self) -> str | None:
        """The template an instance is made from (``foo@.service``), else None."""
        if not self.instance:
            return None
        return f"{self.prefix}@{self.suffix}"

    def with_instance(self, instance: str) -> UnitName:
        """The instance ``instance`` of this template: ``foo@.service`` -> ``foo@1.service``."""
        if not self.is_template:
            raise InvalidUnitName(f"{self.name}: not a template (templates are named foo@.service)")
        return UnitName.parse(f"{self.prefix}@{instance}{self.suffix}")

    def __str__(self) -> str:
        return self.name


def _check(name: str) -> None:
    if not name:
        raise InvalidUnitName("unit name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidUnitName(
            f"unit name is {len(name)} characters long; systemd allows at most {MAX_NAME_LENGTH}"
        )
    if "/" in name:
        raise InvalidUnitName(
            f"{name!r}: a unit name may not contain '/' (it is a file name, not a path)"
        )
    bad = _INVALID_CHAR.search(name)
    if bad:
        raise InvalidUnitName(
            f"{name!r}: invalid character {bad.group()!r} "
            "(allowed: letters, digits and : _ . \\ @ -)"
        )
    stem, dot, type_ = name.rpartition(".")
    if not dot:
        raise InvalidUnitName(f"{name!r}: no type suffix (one of {_SUFFIXES})")
    if type_ not in UNIT_TYPES:
        raise InvalidUnitName(f"{name!r}: unknown type suffix '.{type_}' (one of {_SUFFIXES})")
    if not stem:
        raise InvalidUnitName(f"{name!r}: no name before the type suffix")
    if name.startswith("."):
        raise InvalidUnitName(
            f"{name!r}: a unit name may not start with '.' (systemd ignores hidden unit files)"
        )
    if stem.startswith("@"):
        raise InvalidUnitName(f"{name!r}: a unit name may not start with '@'")


def expand_specifiers(value: str, name: UnitName) -> str:
    """Expand ``%n %N %p %i`` and ``%%`` as systemd does; other specifiers are errors.

    Raises InvalidUnitFile naming the unknown specifier.
    """
    if "%" not in value:
        return value
    table = {"n": name.name, "N": name.stem, "p": name.prefix, "i": name.instance, "%": "%"}
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        if i + 1 == len(value):
            raise InvalidUnitFile(f"{value!r} ends with a lone '%' (write %% for a literal %)")
        spec = value[i + 1]
        if spec not in table:
            raise InvalidUnitFile(
                f"unknown specifier %{spec} in {value!r} (supported: %n %N %p %i %%)"
            )
        out.append(table[spec])
        i += 2
    return "".join(out)
