"""Domain values -> wire models (pure; shared by the API and ``fleetctl --driver etcd``).

A unit's ``currentState`` is derived (docs/design.md) from the schedule
and what the agent of the scheduled machine published:

- not scheduled anywhere: ``inactive``;
- scheduled, and systemd reports it running, starting, stopping or failed
  after a start: ``launched`` (fleet's "the agent launched it");
- scheduled and loaded into systemd, not running: ``loaded``;
- scheduled but not yet reported by the agent: ``inactive``.

A global unit is scheduled to many machines; its ``currentState`` is the
least advanced state among them and it has no ``machineID``.  A unit in a
start-first move is scheduled to two machines: its ``machineID`` is the one it
moves to, and its ``reason`` says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from fleetd import model
from fleetd.errors import InvalidInput
from fleetd.requirements import Requirements, ReservationDefaults, parse_requirements
from fleetd.unitfile import UnitFile, UnitName

from .. import wire
from .history import rfc3339

# systemd ActiveStates that mean "a start was issued": the unit runs or ran.
LAUNCHED_ACTIVE_STATES = frozenset({"active", "activating", "reloading", "deactivating", "failed"})
_ORDER = {
    model.DesiredState.INACTIVE: 0,
    model.DesiredState.LOADED: 1,
    model.DesiredState.LAUNCHED: 2,
}


def short_hash(value: str) -> str:
    return value[:7]


def options_of(text: str) -> list[wire.UnitOption]:
    """A stored unit file as fleet's option list."""
    unit = UnitFile.from_text(text)
    return [wire.UnitOption(section=o.section, name=o.name, value=o.value) for o in unit.options]


@lru_cache(maxsize=65536)
def _requirements(name: str, text_hash: str, text: str, cpu: int, mem: int) -> Requirements:
    del text_hash  # part of the cache key only
    return parse_requirements(
        UnitFile.from_text(text), UnitName.parse(name), ReservationDefaults(cpu, mem)
    )


def requirements_of(unit: model.Unit, defaults: ReservationDefaults | None = None) -> Requirements:
    """The unit's ``[X-Fleet]`` requirements (cached by name and hash).

    A record that no longer parses (written by another version) counts as
    having no requirements rather than breaking every listing.
    """
    d = defaults or ReservationDefaults()
    try:
        return _requirements(unit.name, unit.hash, unit.text, d.cpu_millis, d.memory_bytes)
    except InvalidInput:
        return Requirements()


def runs_once(unit: model.Unit) -> bool:
    """A oneshot service without RemainAfterExit: inactive again once it ran successfully."""
    if not unit.name.endswith(".service") or "oneshot" not in unit.text:
        return False
    try:
        return file_runs_once(UnitFile.from_text(unit.text))
    except InvalidInput:
        return False


def file_runs_once(unit_file: UnitFile) -> bool:
    """``runs_once`` for a parsed file (fleetctl has the options, not the text)."""
    kind = (unit_file.last("Service", "Type") or "").strip().lower()
    remain = (unit_file.last("Service", "RemainAfterExit") or "").strip().lower()
    return kind == "oneshot" and remain not in ("yes", "true", "1", "on")


def state_of(
    entry: model.ScheduleEntry, state: model.UnitState | None, once: bool = False
) -> model.DesiredState:
    """The current state of one scheduled copy of a unit (``once``: see ``runs_once``)."""
    if state is None:
        return model.DesiredState.INACTIVE
    if state.active_state in LAUNCHED_ACTIVE_STATES:
        return model.DesiredState.LAUNCHED
    if (
        once
        and entry.desired is model.DesiredState.LAUNCHED
        and state.hash == entry.hash
        and state.active_state == "inactive"
    ):
        # The agent started it and it ran to completion.
        return model.DesiredState.LAUNCHED
    if state.load_state == "loaded":
        return model.DesiredState.LOADED
    return model.DesiredState.INACTIVE


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the listings need, read once per request."""

    units: Sequence[model.Unit] = ()
    schedule: Sequence[model.ScheduleEntry] = ()
    states: Sequence[model.UnitState] = ()
    machines: Sequence[model.Machine] = ()
    flags: Mapping[str, model.MachineFlags] = field(default_factory=dict)
    placements: Mapping[str, model.Placement] = field(default_factory=dict)


def _index_states(
    states: Iterable[model.UnitState],
) -> dict[tuple[str, str], model.UnitState]:
    return {(s.machine, s.name): s for s in states}


def unit_view(
    unit: model.Unit,
    entries: Sequence[model.ScheduleEntry],
    states: Mapping[tuple[str, str], model.UnitState],
    placement: model.Placement | None,
    global_: bool,
) -> wire.Unit:
    current = model.DesiredState.INACTIVE
    if entries:
        once = runs_once(unit)
        current = min(
            (state_of(e, states.get((e.machine, e.name)), once) for e in entries),
            key=lambda s: _ORDER[s],
        )
    machine = entries[0].machine if len(entries) == 1 and not global_ else None
    moving = [e for e in entries if e.moving_from] if not global_ else []
    if len(entries) == 2 and len(moving) == 1:
        machine = moving[0].machine  # a start-first move: where it goes
    reason = None
    if placement is not None and unit.desired != model.DesiredState.INACTIVE:
        # Not placed, or placed but not as it should be: moving, cannot leave a
        # draining machine, waiting for a disruption budget.
        reason = placement.summary
    return wire.Unit(
        name=unit.name,
        options=options_of(unit.text),
        desiredState=unit.desired.value,
        currentState=current.value,
        machineID=machine,
        hash=unit.hash,
        reason=reason,
    )


def unit_views(snap: Snapshot, names: Iterable[str] | None = None) -> list[wire.Unit]:
    wanted = None if names is None else set(names)
    by_unit: dict[str, list[model.ScheduleEntry]] = {}
    for entry in snap.schedule:
        by_unit.setdefault(entry.name, []).append(entry)
    states = _index_states(snap.states)
    out = []
    for unit in snap.units:
        if wanted is not None and unit.name not in wanted:
            continue
        entries = sorted(by_unit.get(unit.name, []), key=lambda e: e.machine)
        out.append(
            unit_view(
                unit,
                entries,
                states,
                snap.placements.get(unit.name),
                requirements_of(unit).global_,
            )
        )
    return out


def state_view(state: model.UnitState) -> wire.UnitState:
    return wire.UnitState(
        name=state.name,
        hash=state.hash,
        machineID=state.machine,
        systemdLoadState=state.load_state,
        systemdActiveState=state.active_state,
        systemdSubState=state.sub_state,
        health=state.health.value,
        healthMessage=state.health_message or None,
        healthSince=rfc3339(state.health_since) if state.health_since else None,
    )


def merged_metadata(machine: model.Machine, flags: model.MachineFlags | None) -> dict[str, str]:
    """The machine's own metadata with the operator's overrides (``PATCH /machines``) on top."""
    meta = machine.metadata_dict()
    if flags is not None:
        meta.update(dict(flags.metadata_overrides))
    return meta


def machine_views(
    snap: Snapshot, defaults: ReservationDefaults | None = None
) -> list[wire.Machine]:
    units = {u.name: u for u in snap.units}
    allocated: dict[str, model.Capacity] = {}
    counts: dict[str, int] = {}
    for entry in snap.schedule:
        counts[entry.machine] = counts.get(entry.machine, 0) + 1
        unit = units.get(entry.name)
        if unit is None:
            continue
        reqs = requirements_of(unit, defaults)
        allocated[entry.machine] = allocated.get(entry.machine, model.Capacity()) + model.Capacity(
            reqs.cpu_millis, reqs.memory_bytes
        )
    out = []
    for machine in snap.machines:
        flags = snap.flags.get(machine.id)
        used = allocated.get(machine.id, model.Capacity())
        out.append(
            wire.Machine(
                id=machine.id,
                primaryIP=machine.public_ip,
                metadata=merged_metadata(machine, flags),
                hostname=machine.hostname or None,
                capacity=wire.Resources(
                    cpuMillis=machine.capacity.cpu_millis,
                    memoryBytes=machine.capacity.memory_bytes,
                ),
                allocated=wire.Resources(cpuMillis=used.cpu_millis, memoryBytes=used.memory_bytes),
                units=counts.get(machine.id, 0),
                unschedulable=bool(flags and (flags.unschedulable or flags.draining)),
                draining=bool(flags and flags.draining),
                version=machine.version or None,
                systemdConnected=machine.systemd_connected,
                bootID=machine.boot_id or None,
            )
        )
    return out


def placement_view(placement: model.Placement) -> wire.Placement:
    return wire.Placement(
        name=placement.name,
        summary=placement.summary,
        reasons=dict(placement.rejections),
    )


def unit_summary(unit: model.Unit, defaults: ReservationDefaults | None = None) -> wire.UnitSummary:
    """A unit without its file: what a live view keeps (``GET /cluster``, ``unit`` events)."""
    reqs = requirements_of(unit, defaults)
    return wire.UnitSummary.model_validate(
        {
            "name": unit.name,
            "desiredState": unit.desired.value,
            "hash": unit.hash,
            "global": reqs.global_,
            "runsOnce": runs_once(unit),
            "cpuMillis": reqs.cpu_millis,
            "memoryBytes": reqs.memory_bytes,
        }
    )


def scheduled_view(entry: model.ScheduleEntry) -> wire.ScheduledUnit:
    return wire.ScheduledUnit(
        name=entry.name,
        machineID=entry.machine,
        desiredState=entry.desired.value,
        hash=entry.hash,
    )
