"""Records written straight into the registry (bypassing the API's checks): schedule entries
under hostile names are dropped by the agent's schedule view (initial read and watch), so
no path is ever built from them; unit texts no valid unit has are never made available."""

from __future__ import annotations

import asyncio

import pytest

from fleetd.agent.desired import Bodies, ScheduleView
from fleetd.model import DesiredState, ScheduleEntry, Unit
from fleetd.registry import codec
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store
from fleetd.testing.polling import until

M = "a" * 32
HOSTILE = [
    "../../etc/passwd.service",
    "../x.service",
    "/etc/passwd.service",
    "a/b.service",
    "..",
    ".x.service",
    ".tmp-web.service",
    "x\n.service",
    "x\x00.service",
    "x\x1b[2J.service",
    "x",
    "passwd",
    "x" * 300 + ".service",
    "",
]


async def _put_raw(store: Store, name: str) -> None:
    value = codec.encode_schedule(ScheduleEntry(M, "web.service", "1" * 40, DesiredState.LAUNCHED))
    await store.registry.put(store.keys.machine_schedule(M) + name, value)


async def test_hostile_names_never_enter_the_view() -> None:
    store = Store(MemoryRegistry(), Keys())
    for name in HOSTILE[: len(HOSTILE) // 2]:
        await _put_raw(store, name)
    await _put_raw(store, "web.service")
    view = ScheduleView(store, M, on_change=lambda: None)
    task = asyncio.create_task(view.run())
    try:
        await asyncio.wait_for(view.ready.wait(), 5)
        assert set(view.entries) == {"web.service"}
        for name in HOSTILE[len(HOSTILE) // 2 :]:
            await _put_raw(store, name)
        await _put_raw(store, "db.service")
        await until(lambda: "db.service" in view.entries, "db.service in the view")
        assert set(view.entries) == {"web.service", "db.service"}
        await view.refresh()
        assert set(view.entries) == {"web.service", "db.service"}
        assert all(e.name in ("web.service", "db.service") for e in view.entries.values())
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(
    "text",
    [
        "[Service]\nExecStart=/bin/true\ud800\n",  # stored as \\ud800 in the record's JSON
        "[Service]\nExecStart=/bin/true\x00rm\n",
        "[Service]\nExecStart=/bin/true\n[X-Fleet]\nAtMostOnce=maybe\n",
        "not a unit file",
        "",
    ],
)
async def test_hostile_unit_bodies_are_not_available(text: str) -> None:
    """A unit record written around the API with text no valid unit has: the agent's
    body cache says "not available" (and logs why) instead of crashing."""
    store = Store(MemoryRegistry(), Keys())
    unit = Unit("web.service", text, "1" * 40, DesiredState.LAUNCHED)
    await store.registry.put(store.keys.unit("web.service"), codec.encode_unit(unit))
    bodies = Bodies(store)
    assert await bodies.fetch("web.service", "1" * 40) is None
    assert await bodies.fetch_all([("web.service", "1" * 40)]) == {"web.service"}
