"""Extension: a server-sent event stream of unit and machine changes.

``GET /fleet/v1/events`` watches the registry from now (or from ``since`` /
``Last-Event-ID``, a registry revision) and sends one event per changed key:
``event:`` is the kind (unit, schedule, state, machine, machine-flags,
placement, rollout, maintenance, reboot-request, leader, guard: the mass-loss guard
started or changed (``put``) or ended (``delete``), settings: the cluster settings
changed), ``id:`` the revision,
``data:`` a JSON object.  A comment line is sent every ``KEEPALIVE`` seconds so
dead clients are noticed.  If the history was compacted past the resume point, a
``resync`` event is sent and the stream ends: the client re-reads the collections and reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from fleetd.errors import FleetError, InvalidInput, WatchCompacted
from fleetd.registry import codec, maintcodec
from fleetd.registry.base import EventType, WatchEvent
from fleetd.registry.store import Store
from fleetd.requirements import ReservationDefaults
from fleetd.rollouts.record import State

from ..context import ApiContext, get_ctx
from ..service import config, maintenance
from ..service.clusterview import current_revision
from ..service.views import state_view, unit_summary

router = APIRouter(tags=["events"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
KEEPALIVE = 15.0
KINDS = (
    "unit",
    "schedule",
    "state",
    "machine",
    "machine-flags",
    "placement",
    "rollout",
    "maintenance",
    "reboot-request",
    "leader",
    "guard",
    "settings",
)


def classify(
    store: Store, event: WatchEvent, defaults: ReservationDefaults | None = None
) -> tuple[str, dict[str, Any]] | None:
    """The event kind and its JSON data, or None for keys clients do not care about.

    A ``put`` carries the key's whole new value as ``GET /cluster`` has it (a unit's
    summary, a schedule entry, a state, a placement with its reasons), so a live view
    applies it without reading anything else.
    """
    keys = store.keys
    key = event.key
    deleted = event.type is EventType.DELETE
    data: dict[str, Any] = {
        "action": "delete" if deleted else "put",
        "revision": event.mod_revision,
    }
    try:
        if key.startswith(keys.units):
            name = keys.split(key, keys.units)[0]
            data["name"] = name
            if not deleted:
                unit = store.unit_from(key, event.value)
                summary = unit_summary(unit, defaults)
                data.update(summary.model_dump(by_alias=True, exclude={"name"}))
            return "unit", data
        if key.startswith(keys.schedule):
            machine, name = keys.split(key, keys.schedule)
            data.update(name=name, machineID=machine)
            if not deleted:
                entry = store.schedule_from(key, event.value)
                data.update(desiredState=entry.desired.value, hash=entry.hash)
            return "schedule", data
        if key.startswith(keys.states):
            machine, name = keys.split(key, keys.states)
            data.update(name=name, machineID=machine)
            if not deleted:
                # the fields of GET /state, health included
                view = state_view(store.state_from(key, event.value))
                data.update(view.model_dump(exclude_none=True, exclude={"name", "machineID"}))
            return "state", data
        if key.startswith(keys.machine_flags):
            data["machineID"] = keys.split(key, keys.machine_flags)[0]
            if not deleted:
                _, flags = store.flags_from(key, event.value)
                data.update(unschedulable=flags.unschedulable, draining=flags.draining)
            return "machine-flags", data
        if key.startswith(keys.machines):
            data["machineID"] = keys.split(key, keys.machines)[0]
            if not deleted:
                found = store.machine_from(key, event.value)
                data.update(primaryIP=found.public_ip, systemdConnected=found.systemd_connected)
            return "machine", data
        if key.startswith(keys.rollouts):
            data["unit"] = keys.split(key, keys.rollouts)[0]
            if not deleted:
                record = store.rollout_from(key, event.value)
                counts = record.counts()
                data.update(
                    id=record.id,
                    phase=record.phase.value,
                    toVersion=record.to_version,
                    done=counts[State.DONE],
                    skipped=counts[State.SKIPPED],
                    total=len(record.targets),
                    reverting=record.reverting,
                    message=record.message,
                )
            return "rollout", data
        if key == keys.maintenance:
            if not deleted:
                maint = maintcodec.decode_maintenance(key, event.value)
                data.update(
                    id=maint.id,
                    phase=maint.phase.value,
                    message=maint.message,
                    failure=maint.failure,
                    machines=[
                        {"id": j.machine, "phase": j.phase.value, "detail": j.detail}
                        for j in maint.jobs
                    ],
                    # the whole record as GET /cluster has it (its "action" would
                    # collide with the event's put/delete)
                    maintenance=maintenance.view(maint).model_dump(mode="json", exclude_none=True),
                )
            return "maintenance", data
        if key.startswith(keys.reboot_requests):
            data["machineID"] = keys.split(key, keys.reboot_requests)[0]
            if not deleted:
                request = maintcodec.decode_request(data["machineID"], key, event.value)
                data.update(
                    maintenance.request_view(request).model_dump(mode="json", exclude_none=True)
                )
            return "reboot-request", data
        if key.startswith(keys.placements):
            data["name"] = keys.split(key, keys.placements)[0]
            if not deleted:
                placement = store.placement_from(key, event.value)
                data.update(summary=placement.summary, reasons=dict(placement.rejections))
            return "placement", data
        if key == keys.leader:
            if not deleted:
                data["machineID"] = json.loads(event.value).get("machine", "")
            return "leader", data
        if key == keys.guard:
            if not deleted:  # it ended: deleted by the leader, or with its lease
                guard = config.guard_view(codec.decode_guard(key, event.value))
                data.update(guard.model_dump())
            return "guard", data
        if key == keys.cluster_settings:
            if not deleted:
                data["settings"] = codec.decode_cluster_settings(key, event.value).values()
            return "settings", data
    except (FleetError, ValueError, IndexError):
        return None
    return None


def format_event(kind: str, revision: int, data: dict[str, Any]) -> str:
    return f"id: {revision}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def parse_kinds(raw: str | None) -> frozenset[str]:
    if not raw:
        return frozenset(KINDS)
    kinds = frozenset(k.strip() for k in raw.split(",") if k.strip())
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise InvalidInput(
            f"unknown event kind(s) {', '.join(unknown)} (known: {', '.join(KINDS)})"
        )
    return kinds


async def event_stream(
    store: Store,
    start: int,
    kinds: frozenset[str],
    keepalive: float = KEEPALIVE,
    defaults: ReservationDefaults | None = None,
) -> AsyncIterator[str]:
    queue: asyncio.Queue[list[WatchEvent] | BaseException | None] = asyncio.Queue(maxsize=256)

    async def pump() -> None:
        try:
            async for batch in store.registry.watch_prefix(store.keys.prefix, start):
                await queue.put(batch)
            await queue.put(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer, which reports it
            await queue.put(exc)

    task = asyncio.create_task(pump())
    try:
        yield f": watching from revision {start}\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), keepalive)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if item is None:
                return
            if isinstance(item, WatchCompacted):
                yield format_event("resync", start, {"reason": str(item)})
                return
            if isinstance(item, BaseException):
                yield format_event("error", start, {"reason": str(item)})
                return
            for event in item:
                found = classify(store, event, defaults)
                if found is not None and found[0] in kinds:
                    yield format_event(found[0], event.mod_revision, found[1])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "event stream"}},
)
async def events(
    ctx: Ctx,
    since: Annotated[
        int | None, Query(ge=0, description="resume after this registry revision")
    ] = None,
    kinds: Annotated[
        str | None, Query(description=f"comma-separated subset of: {', '.join(KINDS)}")
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Extension: server-sent events of unit and machine changes."""
    wanted = parse_kinds(kinds)
    if since is None and last_event_id:
        if not (last_event_id.isascii() and last_event_id.isdigit()):
            raise InvalidInput(f"Last-Event-ID must be a revision number, got {last_event_id!r}")
        since = int(last_event_id)
    if since is None:
        since = await current_revision(ctx.store)
    return StreamingResponse(
        event_stream(ctx.store, since + 1, wanted, defaults=ctx.defaults),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
