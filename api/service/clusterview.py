"""The whole cluster in one answer, for a live view (``GET /fleet/v1/cluster``).

A live view (the dashboard) reads this once and then follows
``/events?since=<revision>``.  The collections are read concurrently, each at
a revision at least ``revision`` (read first), so every change after
``revision`` reaches the view through the stream; a few of them may already
be in the answer, and applying an event is idempotent (each carries the whole
new value of its key, or its deletion), so the view converges on the registry.
"""

from __future__ import annotations

from fleetd.maintenance.store import MaintenanceStore
from fleetd.registry.store import Store
from fleetd.requirements import ReservationDefaults

from .. import wire
from . import maintenance, views
from .queries import snapshot


async def current_revision(store: Store) -> int:
    """The registry's revision now (a read of one small key)."""
    _, revision = await store.registry.get_prefix(store.keys.version)
    return revision


async def read_cluster(
    store: Store, defaults: ReservationDefaults | None = None
) -> wire.ClusterView:
    """Machines, units (without their files), schedule, states, placements, the leader,
    the current (or last) maintenance and the reboot requests."""
    revision = await current_revision(store)
    snap = await snapshot(
        store,
        units=True,
        schedule=True,
        states=True,
        machines=True,
        flags=True,
        placements=True,
    )
    leader = await store.current_leader()
    records = MaintenanceStore(store)
    found = await records.get()
    requests = await records.list_requests()
    return wire.ClusterView(
        revision=revision,
        leader=leader.machine if leader else None,
        machines=views.machine_views(snap, defaults),
        units=[views.unit_summary(u, defaults) for u in snap.units],
        schedule=[views.scheduled_view(e) for e in snap.schedule],
        states=[views.state_view(s) for s in snap.states],
        placements=[views.placement_view(p) for p in snap.placements.values()],
        maintenance=maintenance.view(found[0]) if found else None,
        rebootRequests=[maintenance.request_view(requests[m]) for m in sorted(requests)],
    )
