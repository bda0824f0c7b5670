"""Unit arguments: paths or names, and where a unit's file comes from (fleet's rules).

An argument is a path to a unit file or a unit name; the unit's name is the
file's base name, with ``.service`` added when it has no type suffix.  A unit
to create is read from the file, else (for an instance ``foo@1.service``)
taken from the template ``foo@.service`` already submitted, else from a
template file next to the argument.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetd.api import wire
from fleetd.errors import InvalidInput
from fleetd.unitcheck import check_file
from fleetd.unitfile import UNIT_TYPES, UnitFile, UnitName

from .backend import Backend, CliError

# The API's limits (api/guards.py MAX_BODY, api/wire.py UnitRequest.options): checked
# before parsing, so that a huge file is refused at once rather than after seconds of work.
MAX_FILE = 1024 * 1024
MAX_OPTIONS = 10_000


def unit_name(arg: str) -> str:
    """fleet's ``unitNameMangle`` plus ``maybeAppendDefaultUnitType``."""
    base = os.path.basename(arg.rstrip("/")) or arg
    _, dot, suffix = base.rpartition(".")
    if not dot or suffix not in UNIT_TYPES:
        base += ".service"
    return base


def options_of(unit: UnitFile) -> list[wire.UnitOption]:
    return [wire.UnitOption(section=o.section, name=o.name, value=o.value) for o in unit.options]


def read_unit_file(path: Path, name: str) -> tuple[list[wire.UnitOption], tuple[str, ...]]:
    """The file's options after every check a submission must pass, and the warnings
    about the lines its options leave out (before any section)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE + 1)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_FILE:
        raise CliError(f"{path}: larger than {MAX_FILE} bytes, the most fleetd accepts")
    try:
        unit, dropped = UnitFile.read(data)
        check_file(UnitName.parse(name), unit)
    except InvalidInput as exc:
        raise CliError(f"{path}: {exc}") from exc
    if len(unit.options) > MAX_OPTIONS:
        raise CliError(
            f"{path}: {len(unit.options)} options; fleetd accepts at most {MAX_OPTIONS} per unit"
        )
    return options_of(unit), dropped


def warnings_of(name: str, options: list[wire.UnitOption]) -> tuple[str, ...]:
    """What ``fleetctl validate`` would warn about unit ``name`` with ``options``
    (nothing if fleetd would refuse it: the server says why)."""
    try:
        unit = UnitFile.from_options([(o.section, o.name, o.value) for o in options])
        return check_file(UnitName.parse(name), unit).warnings
    except InvalidInput:
        return ()


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    options: list[wire.UnitOption]
    origin: str  # a path, or "template foo@.service"
    notes: tuple[str, ...] = ()  # warnings about lines of the file its options leave out


def template_files(args: Sequence[str]) -> dict[str, Source]:
    """The template unit files (``foo@.service``) among the arguments, by name."""
    found: dict[str, Source] = {}
    for arg in args:
        name = unit_name(arg)
        try:
            is_template = UnitName.parse(name).is_template
        except InvalidInput:
            continue  # reported when the argument itself is resolved
        source = _file_source(arg, name) if is_template else None
        if source is not None:
            found[name] = source
    return found


def _file_source(arg: str, name: str) -> Source | None:
    path = Path(arg)
    if path.is_file():
        options, notes = read_unit_file(path, name)
        return Source(name, options, str(path), notes)
    return None


def _template_file(arg: str, template: str) -> Source | None:
    local = Path(arg).parent / template
    if local.is_file():
        options, notes = read_unit_file(local, template)
        return Source(template, options, str(local), notes)
    return None


async def find_source(
    backend: Backend,
    arg: str,
    known: Mapping[str, wire.Unit] | None = None,
    siblings: Mapping[str, Source] | None = None,
) -> Source:
    """Where to create ``arg`` from (CliError naming what was looked for).

    ``known``, if given, is every unit in the cluster: templates are looked up
    there instead of with one request per instance.  ``siblings`` are the
    template files named by the same command line (``submit foo@.service
    foo@1.service`` creates the instance from the template given beside it).
    """
    name = unit_name(arg)
    try:
        parsed = UnitName.parse(name)
    except InvalidInput as exc:
        raise CliError(str(exc)) from exc
    from_file = _file_source(arg, name)
    if from_file is not None:
        return from_file
    template = parsed.template
    if template is None:
        raise CliError(f"unable to find unit {name} in the registry or on the filesystem")
    submitted = known.get(template) if known is not None else await backend.get_unit(template)
    if submitted is not None:
        return Source(name, submitted.options, f"template {template}")
    sibling = (siblings or {}).get(template)
    if sibling is not None:
        return Source(name, sibling.options, sibling.origin, sibling.notes)
    from_template = _template_file(arg, template)
    if from_template is not None:
        return Source(name, from_template.options, from_template.origin, from_template.notes)
    raise CliError(
        f"unable to find unit {name}, or its template {template}, "
        "in the registry or on the filesystem"
    )


def local_source(arg: str) -> Source | None:
    """The local file (or template file) ``arg`` names, if there is one."""
    name = unit_name(arg)
    found = _file_source(arg, name)
    if found is not None:
        return found
    try:
        template = UnitName.parse(name).template
    except InvalidInput:
        return None
    return _template_file(arg, template) if template else None


def same_options(a: list[wire.UnitOption], b: list[wire.UnitOption]) -> bool:
    def file_of(options: list[wire.UnitOption]) -> UnitFile:
        return UnitFile.from_options([(o.section, o.name, o.value) for o in options])

    return file_of(a).hash == file_of(b).hash
