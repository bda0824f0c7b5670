"""Writes with fleet's v1 semantics (no FastAPI: ``fleetctl --driver etcd`` uses it too).

``set_unit`` is ``PUT /units/{name}``:

- a new unit needs ``options`` (else Conflict, as fleet's 409); its desired
  state defaults to ``inactive``; it is written only if still absent;
- an existing unit with ``options`` whose hash differs is replaced when
  ``replace`` is true (fleet 1.0 did so; the Go ``fleetctl --replace`` relies
  on it), else Conflict; the desired state is kept unless one is given;
- an existing unit without new options needs ``desiredState`` (else Conflict);
- a template (``foo@.service``) can be submitted but never loaded or started.

Every check runs before anything is written, so bad input changes nothing.
Every write of a text records the versions it adds (fleetd/versions.py) in
the same transaction, authored by the ``Caller``: ``plan_change`` is the one
place that decides a write, for the single and the bulk PUT alike.
The unit file passes ``fleetd.unitcheck``; its warnings (what fleet accepted
and fleetd suspects) come back with the result, the unit is written anyway.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from fleetd import model
from fleetd.caller import Caller
from fleetd.errors import Conflict, InvalidInput, NotFound
from fleetd.registry.store import Store
from fleetd.registry.unitput import UnitPut
from fleetd.unitcheck import check_file
from fleetd.unitfile import UnitFile, UnitName
from fleetd.versions import Head, versions_for

from .. import wire

# A machine id is one registry key segment and a key is a metadata key; both are
# printable ASCII so that neither can smuggle control characters into keys or output.
_METADATA_PATH = re.compile(r"/([A-Za-z0-9][A-Za-z0-9_.:-]*)/metadata/([A-Za-z0-9_.-]+)")


class SetResult(StrEnum):
    CREATED = "created"
    REPLACED = "replaced"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def build_unit_file(
    name: UnitName, options: Sequence[wire.UnitOption]
) -> tuple[UnitFile, tuple[str, ...]]:
    """The unit file for ``options`` and its warnings; InvalidInput if it is refused."""
    unit = UnitFile.from_options([(o.section, o.name, o.value) for o in options])
    checked = check_file(name, unit)
    return checked.unit, checked.warnings


def _check_template(name: UnitName, desired: model.DesiredState) -> None:
    if name.is_template and desired is not model.DesiredState.INACTIVE:
        raise InvalidInput(
            f"cannot {'start' if desired is model.DesiredState.LAUNCHED else 'load'} "
            f"template {name.name}: submit it, then start instances such as "
            f"{name.prefix}@1{name.suffix}"
        )


@dataclass(frozen=True, slots=True)
class UnitChange:
    name: str
    options: Sequence[wire.UnitOption] | None = None
    desired: model.DesiredState | None = None


@dataclass(frozen=True, slots=True)
class UnitWrite:
    """What one change writes (``put``, with the versions a new text adds) and how
    it answers."""

    put: UnitPut
    result: SetResult

    @property
    def unit(self) -> model.Unit:
        return self.put.unit


@dataclass(frozen=True, slots=True)
class Author:
    """Who writes, and when (wall-clock seconds): what a new version records."""

    caller: Caller
    now: float


@dataclass(frozen=True, slots=True)
class SetOutcome:
    """What a change did, and the warnings about the unit file it carried."""

    result: SetResult
    warnings: tuple[str, ...] = ()


def plan_change(
    name: UnitName,
    change: UnitChange,
    existing: tuple[model.Unit, int] | None,
    replace_options: bool,
    head: tuple[Head, int] | None,
    author: Author,
) -> tuple[UnitWrite | None, tuple[str, ...]]:
    """The write ``change`` means given the unit and its version head as read (None:
    unchanged) with the warnings about its unit file, or the InvalidInput/Conflict that
    refuses it.  Shared by the single and the bulk PUT.  ``head`` must have been read
    whenever ``change.options`` is given."""
    unit_file: UnitFile | None = None
    warnings: tuple[str, ...] = ()
    if change.options:
        unit_file, warnings = build_unit_file(name, change.options)
    return _plan(name, change, unit_file, existing, replace_options, head, author), warnings


def _plan(
    name: UnitName,
    change: UnitChange,
    unit_file: UnitFile | None,
    existing: tuple[model.Unit, int] | None,
    replace_options: bool,
    head: tuple[Head, int] | None,
    author: Author,
) -> UnitWrite | None:
    if existing is None:
        if unit_file is None:
            raise Conflict(f"unit {name.name} does not exist and options field empty")
        desired = change.desired or model.DesiredState.INACTIVE
        _check_template(name, desired)
        unit = model.Unit(name.name, unit_file.to_text(), unit_file.hash, desired)
        return UnitWrite(_text_put(unit, None, 0, head, author), SetResult.CREATED)
    current, revision = existing
    if unit_file is not None and unit_file.hash != current.hash:
        if not replace_options:
            raise Conflict(
                f"unit {name.name} already exists with different contents "
                f"(hash {current.hash[:7]}, new {unit_file.hash[:7]}); replace it to change it"
            )
        desired = change.desired or current.desired
        _check_template(name, desired)
        unit = model.Unit(name.name, unit_file.to_text(), unit_file.hash, desired)
        return UnitWrite(_text_put(unit, current, revision, head, author), SetResult.REPLACED)
    if change.desired is None:
        raise Conflict("must provide desiredState to update existing unit")
    _check_template(name, change.desired)
    if current.desired is change.desired:
        return None
    unit = replace(current, desired=change.desired)
    return UnitWrite(UnitPut(unit, revision), SetResult.UPDATED)


def _text_put(
    unit: model.Unit,
    current: model.Unit | None,
    revision: int,
    head: tuple[Head, int] | None,
    author: Author,
) -> UnitPut:
    added = versions_for(
        unit.name,
        unit.text,
        unit.hash,
        current,
        head[0] if head else None,
        author.caller,
        author.now,
    )
    return UnitPut(unit, revision, added, head[1] if head else 0)


async def set_unit(
    store: Store,
    change: UnitChange,
    *,
    caller: Caller,
    replace_options: bool = True,
    clock: Callable[[], float] = time.time,
) -> SetOutcome:
    """``PUT /units/{name}``; a new text is recorded as a version by ``caller``."""
    name = UnitName.parse(change.name)
    found = await store.get_unit_with_revision(name.name)
    head = await store.get_version_head(name.name) if change.options else None
    author = Author(caller, clock())
    write, warnings = plan_change(name, change, found, replace_options, head, author)
    if write is None:
        return SetOutcome(SetResult.UNCHANGED, warnings)
    await apply_write(store, write)
    return SetOutcome(write.result, warnings)


async def apply_write(store: Store, write: UnitWrite) -> None:
    """One planned write on its own: a desired-state change is retried on the unit as it
    is then; a text is written only if the unit and its version head are as read
    (else Conflict)."""
    if write.result is SetResult.UPDATED:
        await store.set_desired_state(write.unit.name, write.unit.desired)
    else:
        await store.write_unit(write.put)


async def destroy_unit(store: Store, name: str) -> None:
    """Remove the unit record (the engine then unschedules it); NotFound if absent."""
    UnitName.parse(name)
    if not await store.delete_unit(name):
        raise NotFound(f"unit {name} does not exist")


@dataclass(frozen=True, slots=True)
class MetadataEdit:
    machine: str
    key: str
    value: str | None  # None: remove the override


def parse_metadata_ops(ops: Sequence[wire.MetadataOp]) -> list[MetadataEdit]:
    """Validate every JSON-Patch operation first (fleet's rules); InvalidInput on the first bad."""
    edits = []
    for index, op in enumerate(ops):
        m = _METADATA_PATH.fullmatch(op.path)
        if m is None:
            raise InvalidInput(
                f"operation {index}: machine metadata path invalid: {op.path!r} "
                "(expected /<machine_id>/metadata/<key>)"
            )
        if op.op != "remove" and not op.value:
            raise InvalidInput(f"operation {index}: invalid value: add and replace require a value")
        if op.op != "remove" and op.value is not None and not op.value.isprintable():
            raise InvalidInput(
                f"operation {index}: invalid value {op.value!r}: "
                "control characters are not allowed in metadata values"
            )
        edits.append(MetadataEdit(m.group(1), m.group(2), None if op.op == "remove" else op.value))
    return edits


async def patch_metadata(store: Store, ops: Sequence[wire.MetadataOp]) -> None:
    """Apply metadata overrides in order; they persist while a machine is away."""
    edits = parse_metadata_ops(ops)
    by_machine: dict[str, list[MetadataEdit]] = {}
    for edit in edits:
        by_machine.setdefault(edit.machine, []).append(edit)
    for machine, machine_edits in by_machine.items():
        flags = await store.get_machine_flags(machine)
        overrides = dict(flags.metadata_overrides)
        for edit in machine_edits:
            if edit.value is None:
                overrides.pop(edit.key, None)
            else:
                overrides[edit.key] = edit.value
        await store.set_machine_flags(
            machine, replace(flags, metadata_overrides=tuple(sorted(overrides.items())))
        )


class FlagAction(StrEnum):
    CORDON = "cordon"
    UNCORDON = "uncordon"
    DRAIN = "drain"


async def set_schedulable(store: Store, machine: str, action: FlagAction) -> model.MachineFlags:
    """Cordon (no new units), drain (cordon and move its units away) or uncordon a machine."""
    if await store.get_machine(machine) is None:
        raise NotFound(f"machine {machine} is not registered")
    flags = await store.get_machine_flags(machine)
    if action is FlagAction.CORDON:
        flags = replace(flags, unschedulable=True)
    elif action is FlagAction.DRAIN:
        flags = replace(flags, unschedulable=True, draining=True)
    else:
        flags = replace(flags, unschedulable=False, draining=False)
    await store.set_machine_flags(machine, flags)
    return flags
