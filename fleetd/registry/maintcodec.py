"""Registry values of maintenance (fleetd/maintenance/record.py), as in codec.py (pure):
JSON objects with the schema version ``"v"``; decoders ignore unknown fields and name the
key of a value they refuse."""

from __future__ import annotations

from typing import Any

from fleetd.errors import RegistryError
from fleetd.maintenance.record import (
    Action,
    ActionKind,
    ActionState,
    Job,
    JobPhase,
    MachineAction,
    Maintenance,
    Phase,
    RebootRequest,
)
from fleetd.registry.codec import _decode, _encode, _enum, _get


def _action(action: Action) -> dict[str, Any]:
    return {"kind": action.kind, "argv": list(action.argv)}


def _read_action(raw: dict[str, Any], key: str) -> Action:
    argv = raw.get("argv", [])
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise RegistryError(f"value at {key}: field 'argv' must be a list of strings")
    return Action(_enum(ActionKind, _get(raw, "kind", str, key), "action", key), tuple(argv))


def _status(obj: dict[str, Any], key: str) -> int | None:
    raw = obj.get("exit_status")
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise RegistryError(f"value at {key}: field 'exit_status' must be int")
    return raw


# -- maintenance/current --------------------------------------------------------------


def _job(job: Job) -> dict[str, Any]:
    return {
        "machine": job.machine,
        "phase": job.phase,
        "since": job.since,
        "detail": job.detail,
        "boot_id": job.boot_id,
        "prior": list(job.prior),
        "moved": list(job.moved),
        "exit_status": job.exit_status,
        "refill": None if job.refill is None else list(job.refill),
    }


def _read_job(raw: object, key: str) -> Job:
    if not isinstance(raw, dict):
        raise RegistryError(f"value at {key}: a job must be an object")
    prior = raw.get("prior", [False, False])
    moved = raw.get("moved", [])
    pair = isinstance(prior, list) and len(prior) == 2
    if not (pair and all(isinstance(p, bool) for p in prior)):
        raise RegistryError(f"value at {key}: a job's 'prior' must be [bool, bool]")
    refill = raw.get("refill")
    for field, names in (("moved", moved), ("refill", [] if refill is None else refill)):
        if not isinstance(names, list) or not all(isinstance(m, str) for m in names):
            raise RegistryError(f"value at {key}: a job's {field!r} must be a list of strings")
    return Job(
        machine=_get(raw, "machine", str, key),
        phase=_enum(JobPhase, _get(raw, "phase", str, key), "job phase", key),
        since=_get(raw, "since", float, key, 0.0),
        detail=_get(raw, "detail", str, key, ""),
        boot_id=_get(raw, "boot_id", str, key, ""),
        prior=(prior[0], prior[1]),
        moved=tuple(moved),
        exit_status=_status(raw, key),
        refill=None if refill is None else tuple(refill),
    )


def encode_maintenance(record: Maintenance) -> bytes:
    return _encode(
        {
            "id": record.id,
            "action": _action(record.action),
            "jobs": [_job(j) for j in record.jobs],
            "max_unavailable": record.max_unavailable,
            "phase": record.phase,
            "by": record.by,
            "started": record.started,
            "finished": record.finished,
            "message": record.message,
            "failure": record.failure,
            "requested": record.requested,
            "cancelled": record.cancelled,
        }
    )


def decode_maintenance(key: str, data: bytes) -> Maintenance:
    obj = _decode(key, data)
    jobs = obj.get("jobs", [])
    if not isinstance(jobs, list):
        raise RegistryError(f"value at {key}: field 'jobs' must be a list")
    return Maintenance(
        id=_get(obj, "id", str, key),
        action=_read_action(_get(obj, "action", dict, key), key),
        jobs=tuple(_read_job(j, key) for j in jobs),
        max_unavailable=_get(obj, "max_unavailable", int, key, 1),
        phase=_enum(Phase, _get(obj, "phase", str, key), "maintenance phase", key),
        by=_get(obj, "by", str, key, ""),
        started=_get(obj, "started", float, key, 0.0),
        finished=_get(obj, "finished", float, key, 0.0),
        message=_get(obj, "message", str, key, ""),
        failure=_get(obj, "failure", str, key, ""),
        requested=_get(obj, "requested", bool, key, False),
        cancelled=_get(obj, "cancelled", str, key, ""),
    )


# -- machine-actions/<machine> --------------------------------------------------------


def encode_machine_action(action: MachineAction) -> bytes:
    return _encode(
        {
            "id": action.id,
            "action": _action(action.action),
            "state": action.state,
            "boot_id": action.boot_id,
            "exit_status": action.exit_status,
            "message": action.message,
            "since": action.since,
        }
    )


def decode_machine_action(key: str, data: bytes) -> MachineAction:
    obj = _decode(key, data)
    return MachineAction(
        id=_get(obj, "id", str, key),
        action=_read_action(_get(obj, "action", dict, key), key),
        state=_enum(ActionState, _get(obj, "state", str, key), "action state", key),
        boot_id=_get(obj, "boot_id", str, key, ""),
        exit_status=_status(obj, key),
        message=_get(obj, "message", str, key, ""),
        since=_get(obj, "since", float, key, 0.0),
    )


# -- reboot-requests/<machine> ------------------------------------


def encode_request(request: RebootRequest) -> bytes:
    return _encode(
        {
            "since": request.since,
            "reason": request.reason,
            "window": request.window,
            "utc_offset": request.utc_offset,
        }
    )


def decode_request(machine: str, key: str, data: bytes) -> RebootRequest:
    obj = _decode(key, data)
    return RebootRequest(
        machine=machine,
        since=_get(obj, "since", float, key, 0.0),
        reason=_get(obj, "reason", str, key, ""),
        window=_get(obj, "window", str, key, ""),
        utc_offset=_get(obj, "utc_offset", int, key, 0),
    )
