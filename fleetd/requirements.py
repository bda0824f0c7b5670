"""[X-Fleet] -> Requirements (pure).

The value the scheduler works with.  Parsing (``parse_requirements``) lives
below the dataclasses.  The syntax of single values lives in small modules
re-exported here: ``fleetd.metadata`` (MetadataOp, MetadataCondition,
``metadata_matches``), ``fleetd.constraints`` (booleans, machine ids, globs)
and ``fleetd.quantity`` (CPU and memory).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from fleetd.constraints import glob_matches, parse_bool, parse_glob, parse_machine_id
from fleetd.errors import InvalidInput, InvalidRequirements, InvalidUnitFile, InvalidUnitName
from fleetd.metadata import (
    MetadataCondition,
    MetadataOp,
    metadata_matches,
    parse_metadata_condition,
)
from fleetd.quantity import format_cpu, format_memory, parse_cpu, parse_cpu_quota, parse_memory
from fleetd.unitfile import UnitFile, UnitName, expand_specifiers, split_fleet_values

__all__ = [
    "KEYS",
    "MetadataCondition",
    "MetadataOp",
    "Requirements",
    "ReservationDefaults",
    "format_cpu",
    "format_memory",
    "glob_matches",
    "metadata_matches",
    "parse_cpu",
    "parse_cpu_quota",
    "parse_memory",
    "parse_metadata_condition",
    "parse_requirements",
    "parse_unit",
]


@dataclass(frozen=True, slots=True)
class Requirements:
    machine_id: str | None = None
    machine_of: tuple[str, ...] = ()
    metadata: tuple[MetadataCondition, ...] = ()
    conflicts: tuple[str, ...] = ()  # glob patterns
    global_: bool = False
    replaces: tuple[str, ...] = ()  # glob patterns, like conflicts
    cpu_millis: int = 0  # reserved CPU in millicores
    memory_bytes: int = 0  # reserved memory in bytes
    at_most_once: bool = False

    def allows_machine_id(self, machine_id: str) -> bool:
        """``MachineID=`` is a full id or a prefix of one (fleetctl shows 8 characters)."""
        return self.machine_id is None or machine_id.lower().startswith(self.machine_id)


@dataclass(frozen=True, slots=True)
class ReservationDefaults:
    """Cluster defaults for a service that declares neither a reservation nor a limit."""

    cpu_millis: int = 0
    memory_bytes: int = 0


KEYS = (
    "MachineID",
    "MachineOf",
    "MachineMetadata",
    "Conflicts",
    "Global",
    "Replaces",
    "CPUReservation",
    "MemoryReservation",
    "AtMostOnce",
)
# Deprecated names fleet still read.  A key and its aliases: the first one
# present wins, as in fleet (MachineMetadata is the exception: merged).
ALIASES = {
    "MachineID": ("X-ConditionMachineID", "X-ConditionMachineBootID"),
    "MachineOf": ("X-ConditionMachineOf",),
    "MachineMetadata": ("X-ConditionMachineMetadata",),
    "Conflicts": ("X-Conflicts",),
}
_CANONICAL = {alias: key for key, aliases in ALIASES.items() for alias in aliases}
_CANONICAL |= {key: key for key in KEYS}
_SCALARS = frozenset({"Global", "CPUReservation", "MemoryReservation", "AtMostOnce"})
# Where systemd reads CPUQuota=/MemoryMax= for each unit type with a cgroup.
_EXEC_SECTION = {
    "service": "Service",
    "socket": "Socket",
    "mount": "Mount",
    "swap": "Swap",
    "slice": "Slice",
    "scope": "Scope",
}
# Forbidden pairs (fleet's, plus Global with AtMostOnce, which contradict).
_EXCLUSIVE = (
    ("MachineID", "MachineOf"),
    ("MachineID", "Conflicts"),
    ("MachineID", "Global"),
    ("MachineID", "Replaces"),
    ("Global", "MachineOf"),
    ("Global", "Replaces"),
    ("Conflicts", "Replaces"),
    ("Global", "AtMostOnce"),
)


@dataclass(frozen=True, slots=True)
class _Setting:
    key: str  # as written (maybe an alias)
    words: tuple[str, ...]  # split and specifier-expanded; () = reset


def parse_requirements(
    unit: UnitFile, name: UnitName, defaults: ReservationDefaults | None = None
) -> Requirements:
    """Read ``[X-Fleet]`` of ``unit`` submitted as ``name``.

    Raises InvalidRequirements naming the key (and value) for an unknown key,
    a malformed value or a forbidden combination.  Reservations default to the
    unit's ``CPUQuota=`` / ``MemoryMax=`` / ``MemoryLimit=``, then, for
    services only, to ``defaults``.
    """
    settings = _settings(unit, name)
    used = {key: _resolve(settings, key) for key in KEYS}
    keys = {key: (found[0] if found else "") for key, found in used.items()}
    words = {
        key: [w for s in found[1] for w in s.words] if found else [] for key, found in used.items()
    }
    last = {key: _scalar(used[key]) for key in _SCALARS}

    machine_ids = [parse_machine_id(w, keys["MachineID"]) for w in words["MachineID"]]
    if len(set(machine_ids)) > 1:
        raise InvalidRequirements(
            f"{keys['MachineID']} has several values ({', '.join(machine_ids)}); "
            "a unit can be pinned to one machine only"
        )
    machine_of = tuple(_unit_name(w, keys["MachineOf"]) for w in words["MachineOf"])
    if name.name in machine_of:
        raise InvalidRequirements(f"{keys['MachineOf']}={name.name}: a unit cannot follow itself")
    replaces = tuple(parse_glob(w, keys["Replaces"]) for w in words["Replaces"])
    if any(glob_matches(p, name.name) for p in replaces):
        raise InvalidRequirements(f"{keys['Replaces']}: a unit cannot replace itself")
    reqs = Requirements(
        machine_id=machine_ids[0] if machine_ids else None,
        machine_of=machine_of,
        metadata=tuple(
            parse_metadata_condition(w, keys["MachineMetadata"]) for w in words["MachineMetadata"]
        ),
        conflicts=tuple(parse_glob(w, keys["Conflicts"]) for w in words["Conflicts"]),
        global_=_flag(keys["Global"], last["Global"]),
        replaces=replaces,
        cpu_millis=_cpu(unit, name, keys["CPUReservation"], last["CPUReservation"], defaults),
        memory_bytes=_memory(
            unit, name, keys["MemoryReservation"], last["MemoryReservation"], defaults
        ),
        at_most_once=_flag(keys["AtMostOnce"], last["AtMostOnce"]),
    )
    _check_combinations(reqs, keys)
    return reqs


def parse_unit(
    name: str, text: str | bytes, defaults: ReservationDefaults | None = None
) -> tuple[UnitName, UnitFile, Requirements]:
    """Everything a submission must pass: the name, the file, ``[X-Fleet]``.

    Raises InvalidUnitName, InvalidUnitFile or InvalidRequirements.
    """
    unit_name = UnitName.parse(name)
    unit = UnitFile.from_text(text)
    if not unit.options:
        raise InvalidUnitFile("the unit file has no options")
    return unit_name, unit, parse_requirements(unit, unit_name, defaults)


def _settings(unit: UnitFile, name: UnitName) -> list[_Setting]:
    settings: list[_Setting] = []
    for option in unit.section("X-Fleet"):
        if option.name not in _CANONICAL:
            raise InvalidRequirements(_unknown_key(option.name))
        where = f"{option.name}={option.value}"
        try:
            words = tuple(expand_specifiers(w, name) for w in split_fleet_values(option.value))
        except InvalidUnitFile as exc:
            raise InvalidRequirements(f"{where}: {exc}") from exc
        settings.append(_Setting(option.name, words))
    return settings


def _unknown_key(key: str) -> str:
    message = f"unknown [X-Fleet] key {key!r}"
    close = difflib.get_close_matches(key, list(_CANONICAL), n=1)
    if close:
        message += f" (did you mean {close[0]}?)"
    deprecated = ", ".join(a for aliases in ALIASES.values() for a in aliases)
    return f"{message}; valid keys: {', '.join(KEYS)} (deprecated: {deprecated})"


def _resolve(settings: list[_Setting], key: str) -> tuple[str, list[_Setting]] | None:
    """The key name used and its settings after resets; None if unset."""
    merged: list[_Setting] = []
    first = ""
    for candidate in (key, *ALIASES.get(key, ())):
        mine = [s for s in settings if s.key == candidate]
        last_reset = max((i for i, s in enumerate(mine) if not s.words), default=-1)
        mine = mine[last_reset + 1 :]
        if not mine:
            continue
        if key != "MachineMetadata":
            return candidate, mine
        merged += mine
        first = first or candidate
    return (first, merged) if merged else None


def _scalar(found: tuple[str, list[_Setting]] | None) -> str | None:
    """A single-valued key: the last assignment wins, as in systemd."""
    if not found:
        return None
    key, settings = found
    words = settings[-1].words
    if len(words) > 1:
        raise InvalidRequirements(f"{key} takes one value, got {' '.join(words)!r}")
    return words[0]


def _flag(key: str, value: str | None) -> bool:
    return value is not None and parse_bool(value, key)


def _unit_name(word: str, key: str) -> str:
    try:
        return UnitName.parse(word).name
    except InvalidUnitName as exc:
        raise InvalidRequirements(f"{key}={word}: {exc}") from exc


def _cpu(
    unit: UnitFile,
    name: UnitName,
    key: str,
    value: str | None,
    defaults: ReservationDefaults | None,
) -> int:
    if value is not None:
        return _quantity(parse_cpu, key, value)
    section = _EXEC_SECTION.get(name.type)
    quota = unit.last(section, "CPUQuota") if section else None
    if section and quota:
        return _quantity(parse_cpu_quota, f"[{section}] CPUQuota", quota)
    return defaults.cpu_millis if defaults and name.type == "service" else 0


def _memory(
    unit: UnitFile,
    name: UnitName,
    key: str,
    value: str | None,
    defaults: ReservationDefaults | None,
) -> int:
    if value is not None:
        return 0 if value == "infinity" else _quantity(parse_memory, key, value)
    section = _EXEC_SECTION.get(name.type)
    for limit in ("MemoryMax", "MemoryLimit"):
        raw = unit.last(section, limit) if section else None
        if not section or not raw:
            continue
        if raw == "infinity":
            return 0
        if raw.endswith(("%", "‰", "‱")):
            break  # a share of the machine's RAM: not known before placement
        return _quantity(parse_memory, f"[{section}] {limit}", raw)
    return defaults.memory_bytes if defaults and name.type == "service" else 0


def _quantity(parse: Callable[[str], int], key: str, value: str) -> int:
    try:
        return parse(value)
    except InvalidInput as exc:
        raise InvalidRequirements(f"{key}={value}: {exc}") from exc


def _check_combinations(reqs: Requirements, keys: dict[str, str]) -> None:
    present = {
        "MachineID": reqs.machine_id is not None,
        "MachineOf": bool(reqs.machine_of),
        "Conflicts": bool(reqs.conflicts),
        "Global": reqs.global_,
        "Replaces": bool(reqs.replaces),
        "AtMostOnce": reqs.at_most_once,
    }
    for a, b in _EXCLUSIVE:
        if present[a] and present[b]:
            raise InvalidRequirements(f"{keys[a]} cannot be used with {keys[b]}")
    for peer in reqs.machine_of:
        for pattern in reqs.conflicts:
            if glob_matches(pattern, peer):
                raise InvalidRequirements(
                    f"unresolvable: {keys['MachineOf']}={peer} matches "
                    f"{keys['Conflicts']}={pattern}"
                )
        for pattern in reqs.replaces:
            if glob_matches(pattern, peer):
                raise InvalidRequirements(
                    f"unresolvable: {keys['MachineOf']}={peer} matches {keys['Replaces']}={pattern}"
                )
