"""[X-Fleet] -> Requirements (pure).

The value the scheduler works with.  Parsing (``read_requirements``, with
warnings; ``parse_requirements``, without) lives below the dataclasses.  The
syntax of single values lives in small modules re-exported here:
``fleetd.metadata`` (MetadataOp, MetadataCondition, ``metadata_matches``),
``fleetd.constraints`` (booleans, machine ids, globs) and ``fleetd.quantity``
(CPU and memory); ``fleetd.fleetcompat`` reads what fleet accepted and
fleetd's syntax refuses.  The whole submission check is ``fleetd.unitcheck``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from fleetd import fleetcompat
from fleetd.constraints import glob_matches, parse_bool
from fleetd.errors import InvalidInput, InvalidRequirements, InvalidUnitFile
from fleetd.healthcheck import HEALTH_KEYS, HealthCheck, read_health_check
from fleetd.metadata import (
    MetadataCondition,
    MetadataOp,
    metadata_matches,
    parse_metadata_condition,
)
from fleetd.quantity import format_cpu, format_memory, parse_cpu, parse_cpu_quota, parse_memory
from fleetd.unitfile import UnitFile, UnitName, split_fleet_values

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
    "read_requirements",
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
    health: HealthCheck | None = None  # run by the agent of the unit's machine
    # How many units of its group (a template's instances) a drain or a maintenance
    # may take down at once (None: no limit); see fleetd/engine/budget.py.
    max_unavailable: int | None = None

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
    "MaxUnavailable",
)
# Deprecated names fleet still read.  As in fleet, the lists (MachineMetadata,
# Conflicts, MachineOf) take the values of a key and of its aliases; for
# MachineID the first name present wins.
ALIASES = {
    "MachineID": ("X-ConditionMachineID", "X-ConditionMachineBootID"),
    "MachineOf": ("X-ConditionMachineOf",),
    "MachineMetadata": ("X-ConditionMachineMetadata",),
    "Conflicts": ("X-Conflicts",),
}
_CANONICAL = {alias: key for key, aliases in ALIASES.items() for alias in aliases}
_CANONICAL |= {key: key for key in (*KEYS, *HEALTH_KEYS)}
_MERGED = frozenset({"MachineMetadata", "Conflicts", "MachineOf"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
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
    value: str  # as written, for fleet's reading of it


def parse_requirements(
    unit: UnitFile, name: UnitName, defaults: ReservationDefaults | None = None
) -> Requirements:
    """Read ``[X-Fleet]`` of ``unit`` submitted as ``name`` (``read_requirements``
    without its warnings)."""
    return read_requirements(unit, name, defaults)[0]


def read_requirements(
    unit: UnitFile, name: UnitName, defaults: ReservationDefaults | None = None
) -> tuple[Requirements, tuple[str, ...]]:
    """Read ``[X-Fleet]`` of ``unit`` submitted as ``name``, with warnings.

    Raises InvalidRequirements naming the key (and value) for what fleetd
    refuses: a forbidden combination, a malformed value of a key fleet did not
    have (reservations, ``AtMostOnce``), a control character.  What fleet v1.0
    accepted but fleetd suspects (an unknown key, ``Conflicts=apache``, ...)
    is read as fleet read it, with a warning that says so (docs/unit-files.md
    lists every case).  Reservations default to the unit's ``CPUQuota=`` /
    ``MemoryMax=`` / ``MemoryLimit=``, then, for services only, to ``defaults``.
    """
    notes: list[str] = []
    settings = _settings(unit, name, notes)
    used = {key: _resolve(settings, key) for key in KEYS}
    keys = {key: (found[0] if found else "") for key, found in used.items()}
    words = {
        key: [w for s in found[1] for w in s.words] if found else [] for key, found in used.items()
    }

    machine_ids = [fleetcompat.machine_id(w, keys["MachineID"], notes) for w in words["MachineID"]]
    if len(set(machine_ids)) > 1:
        notes.append(
            f"{keys['MachineID']} has several values ({', '.join(machine_ids)}); a unit can be "
            f"pinned to one machine only: the first, {machine_ids[0]}, is used, as fleet did"
        )
    machine_of = tuple(fleetcompat.peer(w, keys["MachineOf"], notes) for w in words["MachineOf"])
    if name.name in machine_of:
        notes.append(
            f"{keys['MachineOf']}={name.name}: a unit cannot follow itself; it will not be placed"
        )
    replaces = tuple(fleetcompat.pattern(w, keys["Replaces"], notes) for w in words["Replaces"])
    for pattern in replaces:
        if glob_matches(pattern, name.name):
            notes.append(
                f"{keys['Replaces']}={pattern} matches {name.name} itself; "
                "a unit never replaces itself"
            )
    reqs = Requirements(
        machine_id=machine_ids[0] if machine_ids else None,
        machine_of=machine_of,
        metadata=tuple(
            c
            for w in words["MachineMetadata"]
            if (c := fleetcompat.condition(w, keys["MachineMetadata"], notes)) is not None
        ),
        conflicts=tuple(
            fleetcompat.pattern(w, keys["Conflicts"], notes) for w in words["Conflicts"]
        ),
        global_=_global(used["Global"], notes),
        replaces=replaces,
        cpu_millis=_cpu(unit, name, used["CPUReservation"], defaults, notes),
        memory_bytes=_memory(unit, name, used["MemoryReservation"], defaults, notes),
        at_most_once=_flag(keys["AtMostOnce"], _scalar(used["AtMostOnce"])),
        health=read_health_check(unit, name, notes),
        max_unavailable=_count(keys["MaxUnavailable"], _scalar(used["MaxUnavailable"])),
    )
    _check_combinations(reqs, keys)
    return reqs, tuple(notes)


def _settings(unit: UnitFile, name: UnitName, notes: list[str]) -> list[_Setting]:
    settings: list[_Setting] = []
    for option in unit.section("X-Fleet"):
        if option.name not in _CANONICAL:
            notes.append(_unknown_key(option.name))
            continue
        if option.name in HEALTH_KEYS:
            continue  # read whole by read_health_check (a command is not a list of words)
        where = f"{option.name}={option.value}"
        try:
            raw = split_fleet_values(option.value)
        except InvalidUnitFile as exc:
            raw = fleetcompat.fleet_words(option.value)
            notes.append(f"{where}: {exc}; read whole, quotes included, as fleet did")
        words = tuple(fleetcompat.expand(w, name, where, notes) for w in raw)
        for word in words:
            if _CONTROL.search(word):
                raise InvalidRequirements(
                    f"{option.name}={option.value!r}: control characters are not allowed in "
                    "[X-Fleet] values"
                )
        settings.append(_Setting(option.name, words, option.value))
    return settings


def _unknown_key(key: str) -> str:
    message = f"unknown [X-Fleet] key {key!r}"
    close = difflib.get_close_matches(key, list(_CANONICAL), n=1)
    if close:
        message += f" (did you mean {close[0]}?)"
    deprecated = ", ".join(a for aliases in ALIASES.values() for a in aliases)
    valid = ", ".join((*KEYS, *HEALTH_KEYS))
    return f"{message}; ignored; valid keys: {valid} (deprecated: {deprecated})"


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
        if key not in _MERGED:
            return candidate, mine
        merged += mine
        first = first or candidate
    return (first, merged) if merged else None


def _scalar(found: tuple[str, list[_Setting]] | None) -> str | None:
    """A single-valued key of fleetd's own: the last assignment wins, as in systemd."""
    if not found:
        return None
    key, settings = found
    words = settings[-1].words
    if len(words) > 1:
        raise InvalidRequirements(f"{key} takes one value, got {' '.join(words)!r}")
    return words[0]


def _flag(key: str, value: str | None) -> bool:
    return value is not None and parse_bool(value, key)


MAX_COUNT = 1_000_000


def _count(key: str, value: str | None) -> int | None:
    """A count of units (``MaxUnavailable=``): a whole number from 0."""
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_COUNT:
        raise InvalidRequirements(
            f"{key}={value}: must be a whole number of units from 0 to {MAX_COUNT} "
            "(0: none may be taken down by a drain or a maintenance)"
        )
    return int(value)


def _cpu(
    unit: UnitFile,
    name: UnitName,
    found: tuple[str, list[_Setting]] | None,
    defaults: ReservationDefaults | None,
    notes: list[str],
) -> int:
    value = _scalar(found)
    if found and value is not None:
        return _quantity(parse_cpu, found[0], value)
    section = _EXEC_SECTION.get(name.type)
    quota = unit.last(section, "CPUQuota") if section else None
    if section and quota:
        try:
            return _quantity(parse_cpu_quota, f"[{section}] CPUQuota", quota)
        except InvalidRequirements as exc:
            notes.append(f"{exc}; systemd ignores it, so no CPU is reserved from it")
    return defaults.cpu_millis if defaults and name.type == "service" else 0


def _memory(
    unit: UnitFile,
    name: UnitName,
    found: tuple[str, list[_Setting]] | None,
    defaults: ReservationDefaults | None,
    notes: list[str],
) -> int:
    value = _scalar(found)
    if found and value is not None:
        return 0 if value == "infinity" else _quantity(parse_memory, found[0], value)
    section = _EXEC_SECTION.get(name.type)
    for limit in ("MemoryMax", "MemoryLimit"):
        raw = unit.last(section, limit) if section else None
        if not section or not raw:
            continue
        if raw == "infinity":
            return 0
        if raw.endswith(("%", "‰", "‱")):
            break  # a share of the machine's RAM: not known before placement
        try:
            return _quantity(parse_memory, f"[{section}] {limit}", raw)
        except InvalidRequirements as exc:
            notes.append(f"{exc}; systemd ignores it, so no memory is reserved from it")
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


def _global(found: tuple[str, list[_Setting]] | None, notes: list[str]) -> bool:
    if not found:
        return False
    last = found[1][-1]
    return fleetcompat.boolean(last.words, last.value, found[0], notes)
