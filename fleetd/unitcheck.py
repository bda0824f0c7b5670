"""Everything a unit submission must pass, with what fleetd suspects in it (pure).

``check_unit`` is what ``fleetctl validate``, ``fleetctl submit`` and the
API's ``PUT /units`` apply: the unit name (``fleetd.unitname``), the file
(``fleetd.unitfile``), systemd's rules for the unit's type
(``fleetd.unittypes``) and ``[X-Fleet]`` (``fleetd.requirements``).  An
error refuses the unit; a warning is something fleet v1.0 accepted that
fleetd suspects is a mistake: the unit is accepted and the warning shown.
docs/unit-files.md lists both.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetd.errors import InvalidUnitFile
from fleetd.requirements import Requirements, ReservationDefaults, read_requirements
from fleetd.unitfile import UnitFile, name_warnings
from fleetd.unitname import UnitName
from fleetd.unittypes import check_unit_type


@dataclass(frozen=True, slots=True)
class CheckedUnit:
    """A unit that passed every check of a submission, with what fleetd suspects in it."""

    name: UnitName
    unit: UnitFile
    requirements: Requirements
    warnings: tuple[str, ...] = ()


def check_unit(
    name: str, text: str | bytes, defaults: ReservationDefaults | None = None
) -> CheckedUnit:
    """Everything a submission of unit file ``text`` as ``name`` must pass: the name,
    the file, systemd's rules for the unit's type, ``[X-Fleet]``.

    Raises InvalidUnitName, InvalidUnitFile or InvalidRequirements; what fleet
    accepted but fleetd suspects comes back as ``warnings``.
    """
    unit_name = UnitName.parse(name)
    unit, dropped = UnitFile.read(text)
    return check_file(unit_name, unit, defaults, dropped)


def check_file(
    name: UnitName,
    unit: UnitFile,
    defaults: ReservationDefaults | None = None,
    notes: tuple[str, ...] = (),
) -> CheckedUnit:
    """``check_unit`` for a file already parsed (``notes``: warnings from its parsing)."""
    if not unit.options:
        raise InvalidUnitFile("the unit file has no options")
    warnings = [*notes, *name_warnings(unit), *check_unit_type(name, unit)]
    reqs, more = read_requirements(unit, name, defaults)
    return CheckedUnit(name, unit, reqs, (*warnings, *more))


def parse_unit(
    name: str, text: str | bytes, defaults: ReservationDefaults | None = None
) -> tuple[UnitName, UnitFile, Requirements]:
    """``check_unit`` without its warnings, as a tuple."""
    checked = check_unit(name, text, defaults)
    return checked.name, checked.unit, checked.requirements
