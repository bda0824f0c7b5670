"""The engine's mirrors of the registry, applied to its cluster model.

One ``Collection`` per watched prefix (units, machines, machine flags,
schedule, placement reasons); each takes the mirror's Snapshot/Changes
values and applies them to the model (engine/model.py) through its methods.
Units are parsed once per (name, hash).  The engine's own writes (schedule,
placement) are applied to the model as soon as they succeed, and their
echoes from the watch are skipped by revision, so a pass never plans
against a state older than its own writes; any other write there is
someone else's, and the model then asks for a full pass.

``read_model`` reads each prefix once through the same collections, and
``read_states`` the unit states a full pass needs: what a plan of proposed
changes starts from (``fleetctl plan``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fleetd.engine.model import ClusterModel
from fleetd.engine.plan import UnitSpec
from fleetd.errors import FleetError
from fleetd.model import Unit, UnitState
from fleetd.registry.base import EventType
from fleetd.registry.store import Changes, Snapshot, Store
from fleetd.requirements import Requirements, ReservationDefaults
from fleetd.unitcheck import parse_unit
from fleetd.unittypes import TEMPLATE_TYPES

log = logging.getLogger(__name__)

_INLINE_ITEMS = 64
"""``read_model`` applies larger prefixes in a worker thread."""


class Collection:
    """Applies one prefix's mirror output to the model (``apply`` says whether it changed)."""

    def __init__(
        self,
        store: Store,
        prefix: str,
        put: Callable[[str, bytes], None],
        delete: Callable[[str], None],
        clear: Callable[[], None],
        own_writes: Callable[[], int] | None = None,
    ) -> None:
        """``own_writes`` returns the revision of the engine's last write to this prefix:
        events up to it are echoes already applied (schedule and placement only)."""
        self.store = store
        self.prefix = prefix
        self._put = put
        self._delete = delete
        self._clear = clear
        self._own_writes = own_writes
        self.revision = 0
        self.loaded = False

    def apply(self, item: Snapshot | Changes) -> bool:
        """Apply a mirror item; True if the model changed."""
        if isinstance(item, Snapshot):
            self._clear()
            for key, kv in item.items.items():
                self._safe(self._put, key, kv.value)
            self.revision = item.revision
            self.loaded = True
            return True
        skip_to = max(self.revision, self._own_writes() if self._own_writes else 0)
        changed = False
        for event in item.events:
            if event.mod_revision <= skip_to:
                continue
            changed = True
            if event.type is EventType.DELETE:
                self._safe(self._delete, event.key)
            else:
                self._safe(self._put, event.key, event.value)
        self.revision = max(self.revision, item.revision)
        return changed

    def _safe(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except (FleetError, ValueError, KeyError) as exc:
            log.error("engine: ignoring %s: %s", args[0], exc)


Parsed = dict[tuple[str, str], tuple[Requirements, str]]
"""Parsed requirements (or the parse error) by (hash, name or type): parsing is the
costly part of loading the model."""


def unit_spec(unit: Unit, defaults: ReservationDefaults, parsed: Parsed, units: int) -> UnitSpec:
    """The unit as the engine plans with it, its file parsed through ``parsed`` (a cache
    kept for a model of about ``units`` units)."""
    # Without specifiers (%n %i ...) the requirements depend only on the file and the
    # unit type (reservation defaults), so instances of one template parse once.  The
    # types that cannot be templates have rules tying the name to the file (mount).
    suffix = unit.name.rpartition(".")[2]
    by_type = "%" not in unit.text and suffix in TEMPLATE_TYPES
    cache_key = (unit.hash, "." + suffix if by_type else unit.name)
    found = parsed.get(cache_key)
    if found is None:
        if len(parsed) > 2 * units + 1024:
            parsed.clear()  # forget files no unit uses any more
        try:
            found = (parse_unit(unit.name, unit.text, defaults)[2], "")
        except FleetError as exc:
            found = (Requirements(), str(exc))
        parsed[cache_key] = found
    reqs, error = found
    return UnitSpec(unit.name, unit.hash, unit.desired, reqs, error, unit.pinned)


async def read_model(
    store: Store, defaults: ReservationDefaults, now: Callable[[], float], parsed: Parsed
) -> ClusterModel:
    """The model a new leader starts from: each prefix read once and applied through the
    collections the engine mirrors it with (``fleetctl plan`` plans on it).  The prefixes
    are read one after the other, each as of its own revision, as the mirrors' first
    snapshots are."""
    model = ClusterModel()
    for collection in collections_for(model, store, defaults, now, lambda: 0, parsed):
        snapshot = await store.read(collection.prefix)
        if len(snapshot.items) > _INLINE_ITEMS:  # parsing many files would stall the loop
            await asyncio.to_thread(collection.apply, snapshot)
        else:
            collection.apply(snapshot)
    return model


async def read_states(store: Store, model: ClusterModel) -> dict[tuple[str, str], UnitState]:
    """What the machines a pass must hear from report (ClusterModel.state_machines):
    one read per machine, only while units move or a machine drains."""
    found: dict[tuple[str, str], UnitState] = {}
    for machine in sorted(model.state_machines()):
        for state in await store.list_states(machine):
            found[(state.name, state.machine)] = state
    return found


def collections_for(
    model: ClusterModel,
    store: Store,
    defaults: ReservationDefaults,
    now: Callable[[], float],
    own_writes: Callable[[], int],
    parsed: Parsed,
) -> list[Collection]:
    """The five mirrors the engine keeps, wired to ``model``."""
    keys = store.keys

    def put_unit(key: str, value: bytes) -> None:
        unit = store.unit_from(key, value)
        model.set_unit(unit.name, unit_spec(unit, defaults, parsed, len(model.units)))

    def delete_unit(key: str) -> None:
        model.set_unit(key[len(keys.units) :], None)

    def put_machine(key: str, value: bytes) -> None:
        model.put_machine(store.machine_from(key, value))

    def delete_machine(key: str) -> None:
        model.drop_machine(key[len(keys.machines) :], now())

    def put_flags(key: str, value: bytes) -> None:
        model.set_flags(*store.flags_from(key, value))

    def delete_flags(key: str) -> None:
        model.set_flags(key[len(keys.machine_flags) :], None)

    def put_entry(key: str, value: bytes) -> None:
        entry = store.schedule_from(key, value)
        model.foreign_entry(entry.machine, entry.name, entry)

    def delete_entry(key: str) -> None:
        machine, name = keys.split(key, keys.schedule)
        model.foreign_entry(machine, name, None)

    def put_placement(key: str, value: bytes) -> None:
        placement = store.placement_from(key, value)
        model.foreign_placement(placement.name, placement)

    def delete_placement(key: str) -> None:
        model.foreign_placement(key[len(keys.placements) :], None)

    return [
        Collection(store, keys.units, put_unit, delete_unit, model.clear_units),
        Collection(store, keys.machines, put_machine, delete_machine, model.clear_machines),
        Collection(store, keys.machine_flags, put_flags, delete_flags, model.clear_flags),
        Collection(store, keys.schedule, put_entry, delete_entry, model.clear_schedule, own_writes),
        Collection(
            store,
            keys.placements,
            put_placement,
            delete_placement,
            model.clear_placements,
            own_writes,
        ),
    ]
