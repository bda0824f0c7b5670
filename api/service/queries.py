"""Reads over the Store that build wire views (no FastAPI: ``fleetctl --driver etcd`` uses it).

The API keeps no mirror of the registry (a watch on every key in every
fleetd is what docs/registry.md rules out); each request reads what it needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from fleetd import model
from fleetd.errors import NotFound
from fleetd.registry.store import Store
from fleetd.requirements import ReservationDefaults
from fleetd.unitfile import UnitName

from .. import wire
from . import views
from .pagination import Page, PageToken, paginate

T = TypeVar("T")


async def snapshot(
    store: Store,
    *,
    units: bool = False,
    schedule: bool = False,
    states: bool = False,
    machines: bool = False,
    flags: bool = False,
    placements: bool = False,
) -> views.Snapshot:
    """Read the named collections concurrently."""
    unit_list, entries, state_list, machine_list, flag_map, placement_list = await asyncio.gather(
        _maybe(units, store.list_units),
        _maybe(schedule, store.list_all_schedule),
        _maybe(states, store.list_states),
        _maybe(machines, store.list_machines),
        store.list_machine_flags() if flags else _no_flags(),
        _maybe(placements, store.list_placements),
    )
    return views.Snapshot(
        units=unit_list,
        schedule=entries,
        states=state_list,
        machines=machine_list,
        flags=flag_map,
        placements={p.name: p for p in placement_list},
    )


async def _maybe(wanted: bool, read: Callable[[], Awaitable[list[T]]]) -> list[T]:
    return await read() if wanted else []


async def _no_flags() -> dict[str, model.MachineFlags]:
    return {}


async def list_units(store: Store) -> list[wire.Unit]:
    snap = await snapshot(store, units=True, schedule=True, states=True, placements=True)
    return views.unit_views(snap)


async def unit_page(store: Store, token: PageToken | None, size: int) -> Page[wire.Unit]:
    """One page of units; only the page's unit files are parsed into views."""
    snap = await snapshot(store, units=True, schedule=True, states=True, placements=True)
    page = paginate(snap.units, lambda u: u.name, token, size)
    return Page(views.unit_views(replace(snap, units=page.items)), page.next_token)


async def get_unit(store: Store, name: str) -> wire.Unit:
    """One unit with its current state; NotFound if it does not exist."""
    UnitName.parse(name)
    unit = await store.get_unit(name)
    if unit is None:
        raise NotFound(f"unit {name} does not exist")
    entries, placement = await asyncio.gather(_entries_of(store, name), store.get_placement(name))
    states = {}
    for entry in entries:
        kv = await store.registry.get(store.keys.state(entry.machine, name))
        if kv is not None:
            states[(entry.machine, name)] = store.state_from(kv.key, kv.value)
    return views.unit_view(
        unit,
        sorted(entries, key=lambda e: e.machine),
        states,
        placement,
        views.requirements_of(unit).global_,
    )


# Up to this many machines, a unit's schedule entries are looked up key by key
# instead of reading the whole schedule.
POINT_LOOKUP_MACHINES = 64


async def _entries_of(store: Store, name: str) -> list[model.ScheduleEntry]:
    machines = await store.list_machines()
    if len(machines) > POINT_LOOKUP_MACHINES:
        return [e for e in await store.list_all_schedule() if e.name == name]
    found = await asyncio.gather(
        *(store.registry.get(store.keys.scheduled(m.id, name)) for m in machines)
    )
    # (Entries left on a machine that is gone are not shown: the engine moves them.)
    return [store.schedule_from(kv.key, kv.value) for kv in found if kv is not None]


async def list_states(
    store: Store, machine: str | None = None, names: list[str] | None = None
) -> list[wire.UnitState]:
    found = await store.list_states(machine)
    wanted = set(names) if names else None
    return [views.state_view(s) for s in found if wanted is None or s.name in wanted]


async def list_machines(
    store: Store, defaults: ReservationDefaults | None = None
) -> list[wire.Machine]:
    snap = await snapshot(store, units=True, schedule=True, machines=True, flags=True)
    return views.machine_views(snap, defaults)


async def get_machine(
    store: Store, machine_id: str, defaults: ReservationDefaults | None = None
) -> wire.Machine:
    for machine in await list_machines(store, defaults):
        if machine.id == machine_id:
            return machine
    raise NotFound(f"machine {machine_id} is not registered")


async def get_placement(store: Store, name: str) -> wire.Placement:
    """Why ``name`` is not placed; empty reasons if it is placed or not yet considered."""
    UnitName.parse(name)
    unit, placement = await asyncio.gather(store.get_unit(name), store.get_placement(name))
    if unit is None:
        raise NotFound(f"unit {name} does not exist")
    if placement is None:
        return wire.Placement(name=name, summary="", reasons={})
    return views.placement_view(placement)


async def list_placements(store: Store) -> list[wire.Placement]:
    return [views.placement_view(p) for p in await store.list_placements()]


async def unit_machine(store: Store, name: str) -> model.Machine | None:
    """The machine a unit is scheduled to (the first, for a global unit), if registered."""
    entries = sorted(await _entries_of(store, name), key=lambda e: e.machine)
    for entry in entries:
        machine = await store.get_machine(entry.machine)
        if machine is not None:
            return machine
    return None
