"""The agent's registry side against the in-memory registry: schedule view, bodies, publisher."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from fleetd.agent.desired import Bodies, ScheduleView
from fleetd.agent.publisher import BURST_WINDOW, Publisher, coalesce_delay
from fleetd.agent.units import UnitStatus
from fleetd.model import DesiredState, ScheduleEntry, Unit
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store
from fleetd.testing.polling import until
from fleetd.unitfile import UnitFile

M = "a" * 32
TEXT = "[Service]\nExecStart=/bin/sleep 1000\n"
AMO = TEXT + "\n[X-Fleet]\nAtMostOnce=true\n"


@pytest.fixture
def store() -> Store:
    return Store(MemoryRegistry(), Keys())


async def put_schedule(store: Store, name: str, hash_: str, desired: DesiredState) -> None:
    op = store.schedule_op(ScheduleEntry(M, name, hash_, desired))
    await store.registry.put(op.key, op.value)


async def test_schedule_view_follows_only_its_machine(store: Store) -> None:
    await put_schedule(store, "a.service", "1" * 40, DesiredState.LAUNCHED)
    other = store.schedule_op(ScheduleEntry("b" * 32, "x.service", "2" * 40, DesiredState.LOADED))
    await store.registry.put(other.key, other.value)
    changes: list[int] = []
    view = ScheduleView(store, M, on_change=lambda: changes.append(1))
    task = asyncio.create_task(view.run())
    try:
        await asyncio.wait_for(view.ready.wait(), 5)
        assert set(view.entries) == {"a.service"}
        await put_schedule(store, "b.service", "3" * 40, DesiredState.LOADED)
        await until(lambda: "b.service" in view.entries, "b.service in the view")
        assert view.entries["b.service"].desired is DesiredState.LOADED
        await store.registry.delete(store.keys.scheduled(M, "a.service"))
        await until(lambda: "a.service" not in view.entries, "a.service out of the view")
        # a name that is not a valid unit name is ignored, not turned into a file
        await store.registry.put(store.keys.scheduled(M, "..x"), other.value)
        await put_schedule(store, "c.service", "4" * 40, DesiredState.LOADED)
        await until(lambda: "c.service" in view.entries, "c.service in the view")
        assert "..x" not in view.entries
        assert len(changes) >= 4
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_bodies_fetched_once_per_hash_and_checked(store: Store) -> None:
    unit_file = UnitFile.from_text(AMO)
    for i in range(3):
        await store.put_unit(Unit(f"w@{i}.service", unit_file.text, unit_file.hash))
    bodies = Bodies(store)
    missing = await bodies.fetch_all((f"w@{i}.service", unit_file.hash) for i in range(3))
    assert missing == set()
    body = bodies.get(unit_file.hash)
    assert body is not None and body.at_most_once and not body.has_install
    # units/<name> holds another version than the schedule asks for: not available
    assert await bodies.fetch("other.service", "f" * 40) is None
    assert await bodies.fetch_all([("other.service", "f" * 40)]) == {"other.service"}


async def test_a_body_that_is_not_the_unit_s_text_comes_from_its_versions(store: Store) -> None:
    from fleetd.caller import Caller
    from fleetd.registry.unitput import UnitPut
    from fleetd.versions import versions_for

    old, new = UnitFile.from_text(TEXT), UnitFile.from_text(AMO)
    written: Unit | None = None
    for unit_file in (old, new):
        head = await store.get_version_head("g.service")
        found = await store.get_unit_with_revision("g.service")
        unit = Unit("g.service", unit_file.to_text(), unit_file.hash, DesiredState.LAUNCHED)
        added = versions_for(
            unit.name, unit.text, unit.hash, written, head[0] if head else None, Caller("t"), 1.0
        )
        await store.write_unit(
            UnitPut(unit, found[1] if found else 0, added, head[1] if head else 0)
        )
        written = unit
    bodies = Bodies(store)
    body = await bodies.fetch("g.service", old.hash)  # pinned to the old text
    assert body is not None and body.text == old.to_text() and not body.at_most_once
    assert (await bodies.fetch("g.service", new.hash)).at_most_once  # type: ignore[union-attr]
    assert await bodies.fetch("g.service", "f" * 40) is None


async def test_publisher_batches_removes_and_sweeps(store: Store) -> None:
    pub = Publisher(store=store, machine=M, wall=lambda: 123.0)
    task = asyncio.create_task(pub.run())
    try:
        stale = Publisher(store=store, machine=M, wall=lambda: 1.0)
        stale.set_lease(await store.registry.grant_lease(30))
        stale.managed("gone.service", "9" * 40)
        stale.status(UnitStatus("gone.service", "loaded", "active", "running"))
        await stale.flush()

        pub.managed("a.service", "1" * 40)
        pub.status(UnitStatus("a.service", "loaded", "activating", "start"))
        pub.status(UnitStatus("a.service", "loaded", "active", "running"))
        assert await store.list_states(M) != []  # only the stale one yet: no lease
        lease = await store.registry.grant_lease(30)
        pub.set_lease(lease)
        await asyncio.wait_for(pub.flushed.wait(), 5)
        states = {s.name: s for s in await store.list_states(M)}
        assert set(states) == {"a.service"}  # the stale key was swept
        assert states["a.service"].active_state == "active"
        assert states["a.service"].since == 123.0
        kv = await store.registry.get(store.keys.state(M, "a.service"))
        assert kv is not None and kv.lease == lease

        pub.unmanaged("a.service")
        await asyncio.wait_for(pub.flushed.wait(), 5)
        assert await store.list_states(M) == []

        pub.stop()
        pub.managed("b.service", "2" * 40)
        pub.status(UnitStatus("b.service", "loaded", "active", "running"))
        await pub.flush()
        assert await store.list_states(M) == []
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_coalesce_delay_is_short_for_a_lone_unit_and_long_in_a_burst() -> None:
    quiet, busy = 0.005, 0.05
    assert coalesce_delay([], 10.0, quiet, busy) == quiet
    # one unit: "activating" then "active", two batches
    assert coalesce_delay([9.99, 9.995], 10.0, quiet, busy) == quiet
    # three batches within the window: a burst
    assert coalesce_delay([9.9, 9.95, 9.99], 10.0, quiet, busy) == busy
    # three batches, but the oldest of the last three is outside the window
    assert coalesce_delay([9.0, 9.7, 9.9, 9.99], 10.0, quiet, busy) == quiet
    assert coalesce_delay([9.0, 9.8, 9.9, 9.99], 10.0, quiet, busy) == busy


async def test_publisher_writes_a_burst_in_few_batches(store: Store) -> None:
    pub = Publisher(store=store, machine=M, wall=lambda: 1.0)
    pub.set_lease(await store.registry.grant_lease(30))
    task = asyncio.create_task(pub.run())
    try:
        names = [f"u{i}.service" for i in range(200)]
        for name in names:  # changes arriving over ~0.4 s, as systemd reports a burst
            pub.managed(name, "1" * 40)
            pub.status(UnitStatus(name, "loaded", "active", "running"))
            await asyncio.sleep(0.002)
        await asyncio.wait_for(pub.flushed.wait(), 5)
        assert {s.name for s in await store.list_states(M)} == set(names)
        # one batch per 5 ms would be ~80; coalesced for 50 ms in a burst: ~10-20
        assert pub.batches <= 40, pub.batches

        loop = asyncio.get_running_loop()
        assert pub.next_delay(loop.time()) == pub.burst_coalesce  # the burst just ended

        # quiet again: a lone change is gathered for the short delay only, and written
        await asyncio.sleep(BURST_WINDOW)  # lets the window pass (not a synchronisation)
        assert pub.next_delay(loop.time()) == pub.coalesce
        batches = pub.batches
        pub.status(UnitStatus(names[0], "loaded", "inactive", "dead"))
        await until(lambda: pub.batches > batches, "another batch published")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
