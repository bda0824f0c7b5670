"""The JSON that ``fleetctl --output json`` prints: one fixed shape per command.

Each listing is a JSON array with one object per row of its table; every
object has every key of its shape, ``null`` where there is no value, so a
script can rely on the keys.  Keys use fleet's wire names (``machineID``,
``desiredState``, ...).  The shapes are documented in api/README.md; a change
to them is a change of fleetctl's interface.
"""

from __future__ import annotations

from fleetd.api import wire

from .progress import Outcome


def unit_state(
    state: wire.UnitState | None, unit: wire.Unit | None, machine: wire.Machine | None
) -> dict[str, object]:
    """A row of ``list-units``: a unit on a machine, or (``state`` None) one not placed."""
    name = state.name if state else unit.name if unit else ""
    return {
        "name": name,
        "machineID": state.machineID if state else None,
        "machineIP": machine.primaryIP or None if machine else None,
        "hash": state.hash if state else unit.hash if unit else None,
        "desiredState": unit.desiredState if unit else None,
        "systemdLoadState": state.systemdLoadState if state else None,
        "systemdActiveState": state.systemdActiveState if state else None,
        "systemdSubState": state.systemdSubState if state else None,
        "health": state.health if state else None,
        "healthMessage": state.healthMessage if state else None,
        "healthSince": state.healthSince if state else None,
        "reason": unit.reason if unit else None,
    }


def description(unit: wire.Unit) -> str | None:
    for option in unit.options:
        if option.section == "Unit" and option.name == "Description":
            return option.value
    return None


def is_global(unit: wire.Unit) -> bool:
    return any(
        o.section == "X-Fleet" and o.name == "Global" and o.value.strip().lower() == "true"
        for o in unit.options
    )


def unit_file(unit: wire.Unit) -> dict[str, object]:
    """A row of ``list-unit-files`` (and ``cat``): a submitted unit."""
    return {
        "name": unit.name,
        "hash": unit.hash,
        "desiredState": unit.desiredState,
        "currentState": unit.currentState,
        "machineID": unit.machineID,
        "global": is_global(unit),
        "description": description(unit),
        "reason": unit.reason,
        "options": [o.model_dump(mode="json") for o in unit.options],
    }


def _resources(value: wire.Resources | None) -> dict[str, int] | None:
    if value is None:
        return None
    return {"cpuMillis": value.cpuMillis, "memoryBytes": value.memoryBytes}


def machine(m: wire.Machine) -> dict[str, object]:
    """A row of ``list-machines``."""
    return {
        "id": m.id,
        "hostname": m.hostname,
        "primaryIP": m.primaryIP or None,
        "metadata": dict(sorted(m.metadata.items())),
        "capacity": _resources(m.capacity),
        "allocated": _resources(m.allocated),
        "units": m.units,
        "unschedulable": bool(m.unschedulable),
        "draining": bool(m.draining),
        "version": m.version,
        "systemdConnected": m.systemdConnected,
    }


def machine_flags(flags: wire.MachineFlags) -> dict[str, object]:
    """What ``cordon``/``uncordon``/``drain`` print."""
    return {"id": flags.id, "unschedulable": flags.unschedulable, "draining": flags.draining}


def unit_status(status: wire.UnitStatus) -> dict[str, object]:
    """An item of ``status``."""
    return {
        "name": status.name,
        "machineID": status.machineID,
        "exitCode": status.exitCode,
        "output": status.output,
    }


def verdict(
    name: str, path: str, reason: str | None, warnings: tuple[str, ...] = ()
) -> dict[str, object]:
    """An item of ``validate``."""
    return {
        "name": name,
        "file": path,
        "ok": reason is None,
        "reason": reason,
        "warnings": list(warnings),
    }


def outcome(result: Outcome) -> dict[str, object]:
    """An item of ``load``/``start``/``stop``/``unload``/``restart``."""
    return {
        "name": result.name,
        "ok": result.ok,
        "message": result.message,
        "currentState": result.state or None,
        "machineID": result.machine,
        "reason": result.reason,
    }
