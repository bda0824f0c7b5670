"""Values fleet v1.0 accepted that fleetd's rules refuse: read as fleet read them (pure).

fleetd reads ``[X-Fleet]`` values more strictly than fleet did.  Where fleet
accepted a value that fleetd's rule refuses, the readers here (``machine_id``,
``peer``, ``pattern``, ``condition``, ``boolean``, ``expand``) append a warning
to ``notes`` and return fleet's reading of the value, so that an existing
fleet unit is accepted and behaves as it did under fleet.  The ``fleet_*``
functions are fleet's own readings (fleet's ``unit/unit.go``, ``job/job.go``).
"""

from __future__ import annotations

from fleetd.constraints import (
    fleet_truthy,
    is_glob,
    is_pattern,
    parse_bool,
    parse_glob,
    parse_machine_id,
)
from fleetd.errors import InvalidRequirements, InvalidUnitFile, InvalidUnitName
from fleetd.metadata import MetadataCondition, MetadataOp, parse_metadata_condition
from fleetd.unitname import UnitName, expand_specifiers


def expand(word: str, name: UnitName, where: str, notes: list[str]) -> str:
    """Specifiers expanded as systemd does; an unknown one kept, as fleet kept it."""
    try:
        return expand_specifiers(word, name)
    except InvalidUnitFile as exc:
        notes.append(f"{where}: {exc}; kept as written, as fleet did")
        return fleet_printf(word, name)


def boolean(words: tuple[str, ...], value: str, key: str, notes: list[str]) -> bool:
    """``Global=``'s last setting (``words``, written as ``value``): a boolean, else
    fleet's reading (true only for ``true yes 1 on t``)."""
    if len(words) == 1:
        try:
            return parse_bool(words[0], key)
        except InvalidRequirements as exc:
            truth = fleet_truthy(words[0])
            notes.append(f"{exc}; taken as {str(truth).lower()}, as fleet did")
            return truth
    truth = fleet_truthy(fleet_words(value)[-1])
    notes.append(
        f"{key} takes one value, got {value!r}; taken as {str(truth).lower()}, as fleet did"
    )
    return truth


def machine_id(word: str, key: str, notes: list[str]) -> str:
    """A machine id; anything else is kept (lower-cased) and matched as a prefix."""
    try:
        return parse_machine_id(word, key)
    except InvalidRequirements as exc:
        notes.append(
            f"{exc}; only a machine whose ID starts with {word.lower()!r} can take the unit"
        )
        return word.lower()


def peer(word: str, key: str, notes: list[str]) -> str:
    """A ``MachineOf=`` unit name; anything else is kept (no unit has that name)."""
    try:
        return UnitName.parse(word).name
    except InvalidUnitName as exc:
        notes.append(f"{key}={word}: {exc}; no unit has this name, so this one will not be placed")
        return word


def pattern(word: str, key: str, notes: list[str]) -> str:
    """A ``Conflicts=``/``Replaces=`` pattern; anything else is kept and matched as fleet
    matched it (``glob_matches``)."""
    try:
        return parse_glob(word, key)
    except InvalidRequirements as exc:
        if not is_glob(word) and "." not in word:
            hint = f"did you mean {word}.service or {word}*?"
            notes.append(f"{exc}; as in fleet it matches only a unit named {word!r} ({hint})")
        elif is_glob(word) and not is_pattern(word):
            notes.append(f"{exc}; it matches no unit, as in fleet")
        else:
            notes.append(f"{exc}; matched as fleet matched it (Go's path.Match)")
        return word


def condition(word: str, key: str, notes: list[str]) -> MetadataCondition | None:
    """A ``MachineMetadata=`` condition; else fleet's reading of the word (or None)."""
    try:
        return parse_metadata_condition(word, key)
    except InvalidRequirements as exc:
        found = fleet_condition(word)
        if found is None:
            notes.append(f"{exc}; ignored, as fleet did")
        else:
            notes.append(
                f"{exc}; read as fleet read it: metadata {found.key!r} must be {found.value!r}"
            )
        return found


def fleet_words(value: str) -> list[str]:
    """fleet's ``parseMultivalueLine``: a value that starts and ends with ``"`` is split
    at blanks outside quotes (the quotes removed); any other value is one word, as written."""
    if not (value.startswith('"') and value.endswith('"')):
        return [value]
    words: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == " " and not quoted:
            words.append("".join(current))
            current = []
        else:
            current.append(ch)
    words.append("".join(current))
    return words


def fleet_printf(value: str, name: UnitName) -> str:
    """fleet's ``unitPrintf``: ``%n %N %p %i`` replaced in that order, anything else kept."""
    for spec, text in (("%n", name.name), ("%N", name.stem), ("%p", name.prefix)):
        value = value.replace(spec, text)
    return value.replace("%i", name.instance)


def fleet_condition(word: str) -> MetadataCondition | None:
    """fleet's reading of a ``MachineMetadata=`` word: ``key=value`` with exactly one
    ``=`` and text on both sides; None for any other word, which fleet ignored."""
    parts = word.split("=")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return MetadataCondition(parts[0], MetadataOp.EQ, parts[1])
