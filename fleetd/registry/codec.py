"""Registry values: JSON objects carrying a schema version field ``"v"`` (pure).

Parts of a record that the key already names (machine id, unit name) are
not repeated in the value.  Decoders ignore fields they do not know (a newer
fleetd may add some) and refuse values with a newer schema version or a
missing/mistyped field with a RegistryError that names the key.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, TypeVar

from fleetd import clustersettings
from fleetd.clustersettings import ClusterSettings
from fleetd.errors import InvalidInput, RegistryError
from fleetd.model import (
    Capacity,
    DesiredState,
    GuardRecord,
    Health,
    Machine,
    MachineFlags,
    Placement,
    ScheduleEntry,
    Unit,
    UnitState,
)
from fleetd.registry.keys import SCHEMA_VERSION
from fleetd.rollouts.record import Kind, Options, Phase, Rollout, State, Target
from fleetd.versions import Head, Version

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps({"v": SCHEMA_VERSION, **payload}, separators=(",", ":")).encode()


def _decode(key: str, data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryError(f"value at {key} is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise RegistryError(f"value at {key} is not a JSON object")
    version = obj.get("v")
    if not isinstance(version, int):
        raise RegistryError(f"value at {key} has no schema version 'v'")
    if version > SCHEMA_VERSION:
        raise RegistryError(
            f"value at {key} has schema version {version}; this fleetd reads up to "
            f"{SCHEMA_VERSION} (upgrade fleetd)"
        )
    return obj


def _get(obj: dict[str, Any], name: str, kind: type[T], key: str, default: T | None = None) -> T:
    value = obj.get(name, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RegistryError(f"value at {key}: field {name!r} must be {kind.__name__}")
    return value


def _pairs(obj: dict[str, Any], name: str, key: str) -> tuple[tuple[str, str], ...]:
    raw = obj.get(name, [])
    if not isinstance(raw, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in raw
    ):
        raise RegistryError(f"value at {key}: field {name!r} must be a list of [str, str]")
    return tuple((p[0], p[1]) for p in raw)


def _desired(obj: dict[str, Any], key: str) -> DesiredState:
    raw = _get(obj, "desired", str, key)
    try:
        return DesiredState(raw)
    except ValueError:
        raise RegistryError(f"value at {key}: unknown desired state {raw!r}") from None


# -- units/<name> ------------------------------------------------------------------


def encode_unit(unit: Unit) -> bytes:
    fields: dict[str, Any] = {
        "name": unit.name,
        "text": unit.text,
        "hash": unit.hash,
        "desired": unit.desired,
    }
    if unit.pinned:  # only while a rolling update moves a Global unit
        fields["pinned"] = [list(p) for p in unit.pinned]
    return _encode(fields)


def decode_unit(key: str, data: bytes) -> Unit:
    obj = _decode(key, data)
    return Unit(
        name=_get(obj, "name", str, key),
        text=_get(obj, "text", str, key),
        hash=_get(obj, "hash", str, key),
        desired=_desired(obj, key),
        pinned=_pairs(obj, "pinned", key),
    )


# -- schedule/<machine>/<name> -----------------------------------------------------


def encode_schedule(entry: ScheduleEntry) -> bytes:
    payload: dict[str, Any] = {"hash": entry.hash, "desired": entry.desired}
    if entry.moving_from:
        payload["from"] = entry.moving_from
    return _encode(payload)


def decode_schedule(machine: str, name: str, key: str, data: bytes) -> ScheduleEntry:
    obj = _decode(key, data)
    return ScheduleEntry(
        machine,
        name,
        _get(obj, "hash", str, key),
        _desired(obj, key),
        _get(obj, "from", str, key, ""),
    )


# -- machines/<machine> ------------------------------------------------------------


def encode_machine(machine: Machine) -> bytes:
    return _encode(
        {
            "id": machine.id,
            "hostname": machine.hostname,
            "public_ip": machine.public_ip,
            "metadata": [list(p) for p in machine.metadata],
            "capacity": {
                "cpu_millis": machine.capacity.cpu_millis,
                "memory_bytes": machine.capacity.memory_bytes,
            },
            "version": machine.version,
            "systemd_connected": machine.systemd_connected,
            "boot_id": machine.boot_id,
        }
    )


def decode_machine(key: str, data: bytes) -> Machine:
    obj = _decode(key, data)
    capacity = _get(obj, "capacity", dict, key, {})
    return Machine(
        id=_get(obj, "id", str, key),
        hostname=_get(obj, "hostname", str, key, ""),
        public_ip=_get(obj, "public_ip", str, key, ""),
        metadata=_pairs(obj, "metadata", key),
        capacity=Capacity(
            _get(capacity, "cpu_millis", int, key, 0),
            _get(capacity, "memory_bytes", int, key, 0),
        ),
        version=_get(obj, "version", str, key, ""),
        # Absent from records of fleetds that did not report it: taken as connected.
        systemd_connected=_get(obj, "systemd_connected", bool, key, True),
        boot_id=_get(obj, "boot_id", str, key, ""),
    )


# -- states/<machine>/<name> -------------------------------------------------------


def encode_state(state: UnitState) -> bytes:
    return _encode(
        {
            "hash": state.hash,
            "load": state.load_state,
            "active": state.active_state,
            "sub": state.sub_state,
            "since": state.since,
            "health": state.health,
            "health_msg": state.health_message,
            "health_since": state.health_since,
        }
    )


def decode_state(machine: str, name: str, key: str, data: bytes) -> UnitState:
    obj = _decode(key, data)
    return UnitState(
        machine=machine,
        name=name,
        hash=_get(obj, "hash", str, key),
        load_state=_get(obj, "load", str, key),
        active_state=_get(obj, "active", str, key),
        sub_state=_get(obj, "sub", str, key),
        since=_get(obj, "since", float, key, 0.0),
        # Absent from records of fleetds without health checks; a value this fleetd does
        # not know (a newer one's) says as little: both are "unknown".
        health=_health(_get(obj, "health", str, key, Health.UNKNOWN.value)),
        health_message=_get(obj, "health_msg", str, key, ""),
        health_since=_get(obj, "health_since", float, key, 0.0),
    )


def _health(raw: str) -> Health:
    try:
        return Health(raw)
    except ValueError:
        return Health.UNKNOWN


# -- machine-flags/<machine> -------------------------------------------------------


def encode_flags(flags: MachineFlags) -> bytes:
    return _encode(
        {
            "unschedulable": flags.unschedulable,
            "draining": flags.draining,
            "metadata_overrides": [list(p) for p in flags.metadata_overrides],
        }
    )


def decode_flags(key: str, data: bytes) -> MachineFlags:
    obj = _decode(key, data)
    return MachineFlags(
        unschedulable=_get(obj, "unschedulable", bool, key, False),
        draining=_get(obj, "draining", bool, key, False),
        metadata_overrides=_pairs(obj, "metadata_overrides", key),
    )


# -- placement/<name> --------------------------------------------------------------


def encode_placement(placement: Placement) -> bytes:
    return _encode(
        {
            "summary": placement.summary,
            "rejections": [list(p) for p in placement.rejections],
            "since": placement.since,
        }
    )


def decode_placement(name: str, key: str, data: bytes) -> Placement:
    obj = _decode(key, data)
    return Placement(
        name=name,
        summary=_get(obj, "summary", str, key),
        rejections=_pairs(obj, "rejections", key),
        since=_get(obj, "since", float, key, 0.0),
    )


# -- versions/<name>/<n> and version-heads/<name> ------------------------------------


def encode_unit_version(version: Version) -> bytes:
    return _encode(
        {
            "text": version.text,
            "hash": version.hash,
            "time": version.time,
            "by": version.by,
            "remote": version.remote,
        }
    )


def decode_unit_version(name: str, number: int, key: str, data: bytes) -> Version:
    obj = _decode(key, data)
    time = obj.get("time")
    return Version(
        name=name,
        number=number,
        text=_get(obj, "text", str, key),
        hash=_get(obj, "hash", str, key),
        time=None if time is None else _get(obj, "time", float, key),
        by=_get(obj, "by", str, key),
        remote=_get(obj, "remote", str, key, ""),
    )


def encode_version_head(head: Head) -> bytes:
    return _encode({"number": head.number, "hash": head.hash})


def decode_version_head(key: str, data: bytes) -> Head:
    obj = _decode(key, data)
    number = _get(obj, "number", int, key)
    if number < 1:
        raise RegistryError(f"value at {key}: field 'number' must be at least 1")
    return Head(number, _get(obj, "hash", str, key))


# -- rollouts/<unit> ----------------------------------------------------------------


def encode_rollout(rollout: Rollout) -> bytes:
    o = rollout.options
    return _encode(
        {
            "id": rollout.id,
            "kind": rollout.kind,
            "from_version": rollout.from_version,
            "from_hash": rollout.from_hash,
            "to_version": rollout.to_version,
            "to_hash": rollout.to_hash,
            "options": {
                "max_parallel": o.max_parallel,
                "min_healthy_time": o.min_healthy_time,
                "healthy_deadline": o.healthy_deadline,
                "auto_revert": o.auto_revert,
                "canary": o.canary,
                "start_first": o.start_first,
            },
            "phase": rollout.phase,
            "targets": [
                [t.name, t.old, t.current, t.state, t.started, t.since, t.message]
                for t in rollout.targets
            ],
            "by": rollout.by,
            "created": rollout.created,
            "updated": rollout.updated,
            "message": rollout.message,
            "failure": rollout.failure,
            "promoted": rollout.promoted,
            "reverting": rollout.reverting,
            "revert_version": rollout.revert_version,
            "held": [list(p) for p in rollout.held],
        }
    )


def _enum(kind: type[E], raw: str, what: str, key: str) -> E:
    try:
        return kind(raw)
    except ValueError:
        raise RegistryError(f"value at {key}: unknown {what} {raw!r}") from None


def _target(raw: object, key: str) -> Target:
    if not (
        isinstance(raw, list)
        and len(raw) == 7
        and all(isinstance(x, str) for x in (raw[0], raw[1], raw[2], raw[3], raw[6]))
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw[4:6])
    ):
        raise RegistryError(
            f"value at {key}: a target must be [name, old, current, state, started, since, message]"
        )
    state = _enum(State, raw[3], "target state", key)
    return Target(raw[0], raw[1], raw[2], state, float(raw[4]), float(raw[5]), raw[6])


def decode_rollout(unit: str, key: str, data: bytes) -> Rollout:
    obj = _decode(key, data)
    opts = _get(obj, "options", dict, key, {})
    targets = _get(obj, "targets", list, key, [])
    revert_version = obj.get("revert_version")
    return Rollout(
        id=_get(obj, "id", str, key),
        unit=unit,
        kind=_enum(Kind, _get(obj, "kind", str, key), "rollout kind", key),
        from_version=_get(obj, "from_version", int, key),
        from_hash=_get(obj, "from_hash", str, key),
        to_version=_get(obj, "to_version", int, key),
        to_hash=_get(obj, "to_hash", str, key),
        options=Options(
            max_parallel=_get(opts, "max_parallel", int, key, 1),
            min_healthy_time=_get(opts, "min_healthy_time", float, key, 0.0),
            healthy_deadline=_get(opts, "healthy_deadline", float, key, 0.0),
            auto_revert=_get(opts, "auto_revert", bool, key, False),
            canary=_get(opts, "canary", int, key, 0),
            start_first=_get(opts, "start_first", bool, key, False),
        ),
        phase=_enum(Phase, _get(obj, "phase", str, key), "rollout phase", key),
        targets=tuple(_target(t, key) for t in targets),
        by=_get(obj, "by", str, key, ""),
        created=_get(obj, "created", float, key, 0.0),
        updated=_get(obj, "updated", float, key, 0.0),
        message=_get(obj, "message", str, key, ""),
        failure=_get(obj, "failure", str, key, ""),
        promoted=_get(obj, "promoted", bool, key, False),
        reverting=_get(obj, "reverting", bool, key, False),
        revert_version=None if revert_version is None else _get(obj, "revert_version", int, key),
        held=_pairs(obj, "held", key),
    )


# -- cluster/settings and engine/guard -------------------------------------------------


def encode_cluster_settings(settings: ClusterSettings) -> bytes:
    return _encode(dict(settings.values()))


def decode_cluster_settings(key: str, data: bytes) -> ClusterSettings:
    """The settings set; names this fleetd does not know (a newer one's) are ignored."""
    obj = _decode(key, data)
    known = {name: value for name, value in obj.items() if name in clustersettings.BY_NAME}
    try:
        return clustersettings.from_values(known)
    except InvalidInput as exc:
        raise RegistryError(f"value at {key}: {exc}") from None


def encode_guard(guard: GuardRecord) -> bytes:
    return _encode(
        {
            "cause": guard.cause,
            "reason": guard.reason,
            "since": guard.since,
            "until": guard.until,
            "absent": list(guard.absent),
            "units": guard.units,
        }
    )


def decode_guard(key: str, data: bytes) -> GuardRecord:
    obj = _decode(key, data)
    absent = obj.get("absent", [])
    if not isinstance(absent, list) or not all(isinstance(m, str) for m in absent):
        raise RegistryError(f"value at {key}: field 'absent' must be a list of strings")
    return GuardRecord(
        cause=_get(obj, "cause", str, key),
        reason=_get(obj, "reason", str, key, ""),
        since=_get(obj, "since", float, key, 0.0),
        until=_get(obj, "until", float, key),
        absent=tuple(absent),
        units=_get(obj, "units", int, key, 0),
    )


# -- engine/leader and version -----------------------------------------------------


def encode_leader(machine: str) -> bytes:
    return _encode({"machine": machine})


def decode_leader(key: str, data: bytes) -> str:
    return _get(_decode(key, data), "machine", str, key)


def encode_version() -> bytes:
    return _encode({})


def decode_version(key: str, data: bytes) -> int:
    """The schema version stored at ``version`` (RegistryError if newer than ours)."""
    return _get(_decode(key, data), "v", int, key)
