"""The typed Store over MemoryRegistry (and its fencing and mirror over a real etcd)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from fleetd.errors import Conflict, InvalidInput, NotFound, NotLeader, RegistryError
from fleetd.model import (
    Capacity,
    DesiredState,
    Machine,
    MachineFlags,
    Placement,
    ScheduleEntry,
    Unit,
    UnitState,
)
from fleetd.registry.base import EventType, Registry
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Changes, Snapshot, Store

if TYPE_CHECKING:
    from tests.conftest import FakeClock


@pytest.fixture
def store(memory_registry: MemoryRegistry, key_prefix: str) -> Store:
    return Store(memory_registry, Keys(key_prefix))


@pytest.fixture(params=["memory", pytest.param("etcd", marks=pytest.mark.etcd)])
async def any_store(
    request: pytest.FixtureRequest, key_prefix: str, clock: FakeClock
) -> AsyncIterator[Store]:
    registry: Registry
    if request.param == "memory":
        registry = MemoryRegistry(clock)
    else:
        registry = EtcdRegistry([request.getfixturevalue("etcd_server").endpoint])
    yield Store(registry, Keys(key_prefix))
    await registry.close()


def unit(name: str = "web.service", desired: DesiredState = DesiredState.LAUNCHED) -> Unit:
    return Unit(name, "[Service]\nExecStart=/bin/true\n", "abc123", desired)


def state(machine: str, name: str, active: str = "active") -> UnitState:
    return UnitState(machine, name, "abc123", "loaded", active, "running", 12.5)


async def test_schema_version_is_written_once_and_checked(store: Store) -> None:
    assert await store.ensure_schema() == 1
    assert await store.ensure_schema() == 1
    await store.registry.put(store.keys.version, b'{"v":2}')
    with pytest.raises(RegistryError, match="schema version 2"):
        await store.ensure_schema()


async def test_units_create_replace_list_delete(store: Store) -> None:
    assert await store.get_unit("web.service") is None
    await store.put_unit(unit())
    await store.put_unit(unit("db.service", DesiredState.LOADED))
    assert await store.get_unit("web.service") == unit()
    assert [u.name for u in await store.list_units()] == ["db.service", "web.service"]

    await store.put_unit(unit(desired=DesiredState.INACTIVE))
    got = await store.get_unit("web.service")
    assert got is not None and got.desired is DesiredState.INACTIVE

    assert await store.delete_unit("web.service")
    assert not await store.delete_unit("web.service")
    assert [u.name for u in await store.list_units()] == ["db.service"]


async def test_put_unit_compare_and_swap(store: Store) -> None:
    first = await store.put_unit(unit(), expected_revision=0)
    with pytest.raises(Conflict, match="already exists"):
        await store.put_unit(unit(), expected_revision=0)
    second = await store.put_unit(unit(desired=DesiredState.LOADED), expected_revision=first)
    with pytest.raises(Conflict, match="changed meanwhile"):
        await store.put_unit(unit(desired=DesiredState.INACTIVE), expected_revision=first)
    found = await store.get_unit_with_revision("web.service")
    assert found is not None and found[1] == second
    assert found[0].desired is DesiredState.LOADED

    with pytest.raises(Conflict):
        await store.delete_unit("web.service", expected_revision=first)
    assert await store.delete_unit("web.service", expected_revision=second)


async def test_set_desired_state(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.set_desired_state("web.service", DesiredState.LAUNCHED)
    await store.put_unit(unit(desired=DesiredState.INACTIVE))
    changed = await store.set_desired_state("web.service", DesiredState.LAUNCHED)
    assert changed.desired is DesiredState.LAUNCHED
    assert await store.get_unit("web.service") == changed


async def test_names_that_would_break_the_key_layout_are_refused(store: Store) -> None:
    with pytest.raises(InvalidInput, match="registry key"):
        await store.put_unit(unit("../etc/passwd"))
    with pytest.raises(InvalidInput):
        store.schedule_op(ScheduleEntry("m/1", "a.service", "h", DesiredState.LAUNCHED))
    assert await store.list_units() == []


async def test_election_and_fenced_schedule_writes(store: Store) -> None:
    lease1 = await store.registry.grant_lease(10)
    lease2 = await store.registry.grant_lease(10)
    won = await store.campaign("m1", lease1)
    assert won is not None
    assert await store.campaign("m2", lease2) is None
    assert await store.campaign("m1", lease1) == won  # re-campaign with the same lease
    leader = await store.current_leader()
    assert leader is not None and (leader.machine, leader.revision) == ("m1", won)

    entries = [
        ScheduleEntry(f"m{i % 3}", f"u{i}.service", "h", DesiredState.LAUNCHED) for i in range(300)
    ]
    await store.write_fenced([store.schedule_op(e) for e in entries], won)
    assert len(await store.list_all_schedule()) == 300
    mine = await store.list_schedule("m1")
    assert len(mine) == 100 and all(e.machine == "m1" for e in mine)
    assert await store.list_schedule("m9") == []

    await store.registry.revoke_lease(lease1)  # m1's lease is lost
    assert await store.current_leader() is None
    taken = await store.campaign("m2", lease2)
    assert taken is not None and taken != won
    with pytest.raises(NotLeader):
        await store.write_fenced([store.unschedule_op("m0", "u0.service")], won)
    assert len(await store.list_all_schedule()) == 300

    await store.write_fenced([store.unschedule_op("m0", "u0.service")], taken)
    assert len(await store.list_all_schedule()) == 299
    assert not await store.resign(won)
    assert await store.resign(taken)
    assert await store.current_leader() is None


async def test_placement_reasons(store: Store) -> None:
    lease = await store.registry.grant_lease(10)
    revision = await store.campaign("m1", lease)
    assert revision is not None
    reasons = Placement("big.service", "no machine fits", (("m1", "needs 2G, 512M free"),), 3.0)
    await store.put_placement(reasons, revision)
    assert await store.get_placement("big.service") == reasons
    assert await store.list_placements() == [reasons]
    await store.clear_placement("big.service", revision)
    assert await store.list_placements() == []
    with pytest.raises(NotLeader):
        await store.put_placement(reasons, revision + 1000)


async def test_register_machine_and_duplicate_ids(
    store: Store, memory_registry: MemoryRegistry, clock: FakeClock
) -> None:
    machine = Machine("m1", "host1", "10.0.0.1", (("rack", "a"),), Capacity(2000, 4 << 30), "0.1")
    lease = await store.registry.grant_lease(10)
    await store.register_machine(machine, lease)
    moved = Machine("m1", "host1", "10.0.0.2", (("rack", "a"),), Capacity(2000, 4 << 30), "0.1")
    await store.register_machine(moved, lease)  # same lease: an update
    assert await store.get_machine("m1") == moved
    assert await store.list_machines() == [moved]

    other = await store.registry.grant_lease(30)
    with pytest.raises(Conflict, match="already registered"):
        await store.register_machine(machine, other)
    assert await store.get_machine("m1") == moved

    clock.advance(11)  # the first registration's lease runs out
    memory_registry.expire_leases()
    assert await store.list_machines() == []
    await store.register_machine(machine, other)
    assert await store.list_machines() == [machine]


async def test_states_live_under_the_machine_lease(
    store: Store, memory_registry: MemoryRegistry, clock: FakeClock
) -> None:
    lease1 = await store.registry.grant_lease(10)
    lease2 = await store.registry.grant_lease(30)
    await store.put_states("m1", [state("m1", "a.service"), state("m1", "b.service")], lease1)
    await store.put_states("m2", [state("m2", "a.service", "failed")], lease2)
    assert [s.name for s in await store.list_states("m1")] == ["a.service", "b.service"]
    assert len(await store.list_states()) == 3
    assert await store.list_states("m1") == [state("m1", "a.service"), state("m1", "b.service")]

    await store.put_states("m1", [state("m1", "a.service", "inactive")], lease1, ["b.service"])
    assert await store.list_states("m1") == [state("m1", "a.service", "inactive")]
    with pytest.raises(InvalidInput):
        await store.put_states("m1", [state("m2", "x.service")], lease1)

    clock.advance(11)
    memory_registry.expire_leases()
    assert [s.machine for s in await store.list_states()] == ["m2"]


async def test_machine_flags(store: Store) -> None:
    assert await store.get_machine_flags("m1") == MachineFlags()
    flags = MachineFlags(unschedulable=True, draining=True, metadata_overrides=(("rack", "b"),))
    await store.set_machine_flags("m1", flags)
    assert await store.get_machine_flags("m1") == flags
    assert await store.list_machine_flags() == {"m1": flags}
    await store.set_machine_flags("m1", MachineFlags())
    assert await store.list_machine_flags() == {}


async def test_mirror_yields_snapshot_then_changes_and_survives_compaction(
    any_store: Store,
) -> None:
    store = any_store
    await store.put_unit(unit("a.service"))
    mirror = store.mirror(store.keys.units)
    async with asyncio.timeout(15):
        first = await anext(mirror)
        assert isinstance(first, Snapshot)
        assert list(first.items) == [store.keys.unit("a.service")]

        # Written and compacted before the mirror starts watching: it must re-read.
        await store.put_unit(unit("b.service"))
        latest = await store.put_unit(unit("c.service"))
        await store.registry.compact(latest)
        second = await anext(mirror)
        assert isinstance(second, Snapshot)
        assert sorted(second.items) == [
            store.keys.unit(n) for n in ("a.service", "b.service", "c.service")
        ]
        assert second.revision >= latest

        await store.delete_unit("a.service")
        change = await anext(mirror)
        assert isinstance(change, Changes)
        assert [(e.type, e.key) for e in change.events] == [
            (EventType.DELETE, store.keys.unit("a.service"))
        ]
        assert change.revision > second.revision
        await store.put_unit(unit("d.service"))
        change = await anext(mirror)
        assert isinstance(change, Changes)
        assert store.unit_from(change.events[0].key, change.events[0].value) == unit("d.service")
    await mirror.aclose()  # type: ignore[attr-defined]


@pytest.mark.etcd
async def test_fenced_batch_over_etcd(etcd_registry: EtcdRegistry, key_prefix: str) -> None:
    store = Store(etcd_registry, Keys(key_prefix))
    lease = await etcd_registry.grant_lease(10)
    try:
        revision = await store.campaign("m1", lease)
        assert revision is not None
        entries = [
            ScheduleEntry("m1", f"u{i}.service", "h", DesiredState.LOADED) for i in range(500)
        ]
        await store.write_fenced([store.schedule_op(e) for e in entries], revision)
        assert len(await store.list_schedule("m1")) == 500
        with pytest.raises(NotLeader):
            await store.write_fenced([store.unschedule_op("m1", "u1.service")], revision + 1)
        assert len(await store.list_schedule("m1")) == 500
    finally:
        await etcd_registry.revoke_lease(lease)


async def test_rollout_steps_are_fenced_and_stop_at_a_changed_record(any_store: Store) -> None:
    from fleetd.caller import Caller
    from fleetd.registry.unitput import UnitPut
    from fleetd.rollouts.record import Kind, Phase, Rollout
    from fleetd.versions import versions_for

    store = any_store
    names = [f"web@{i}.service" for i in range(60)]  # 60 units with versions: 3 transactions
    for name in names:
        await store.put_unit(unit(name))
    record = Rollout("r1", "web@.service", Kind.TEMPLATE, 1, "h", 2, "h2")
    await store.put_rollout(record, 0)
    found = await store.get_rollout("web@.service")
    assert found is not None and found[0] == record

    async def writes() -> list[UnitPut]:
        puts = []
        for name in names:
            got = await store.get_unit_with_revision(name)
            assert got is not None
            old, revision = got
            text = "[Service]\nExecStart=/bin/true\n"
            added = versions_for(name, text, "h2", old, None, Caller("rollout by ops"), 1.0)
            puts.append(UnitPut(Unit(name, text, "h2", old.desired), revision, added, 0))
        return puts

    lease = await store.registry.grant_lease(10)
    fence = await store.campaign("m1", lease)
    assert fence is not None
    paused = Rollout("r1", "web@.service", Kind.TEMPLATE, 1, "h", 2, "h2", phase=Phase.PAUSED)
    await store.put_rollout(paused, found[1])  # a pause between the read and the step
    with pytest.raises(Conflict):
        await store.advance_rollout(await writes(), record, found[1], fence)
    assert {u.hash for u in await store.list_units()} == {"abc123"}

    found = await store.get_rollout("web@.service")
    assert found is not None
    moved = Rollout("r1", "web@.service", Kind.TEMPLATE, 1, "h", 2, "h2", message="step")
    await store.advance_rollout(await writes(), moved, found[1], fence)
    assert {u.hash for u in await store.list_units()} == {"h2"}
    assert len(await store.list_versions(names[-1])) == 2
    after = await store.get_rollout("web@.service")
    assert after is not None and after[0] == moved

    await store.registry.revoke_lease(lease)  # deposed
    with pytest.raises(NotLeader):
        await store.advance_rollout([], record, after[1], fence)
    with pytest.raises(Conflict):
        await store.put_rollout(record, found[1])


async def test_cluster_settings_compare_and_swap_and_the_guard_under_the_leader_lease(
    any_store: Store,
) -> None:
    """Over both registries: the settings are written only over what was read; the
    guard's record is fenced and goes with the leader's lease."""
    from fleetd.clustersettings import ClusterSettings
    from fleetd.model import GuardRecord

    store = any_store
    assert await store.get_cluster_settings() == (ClusterSettings(), 0)
    first = await store.put_cluster_settings(ClusterSettings(strategy="spread"), 0)
    with pytest.raises(Conflict):
        await store.put_cluster_settings(ClusterSettings(max_unavailable=2), 0)
    with pytest.raises(Conflict):
        await store.put_cluster_settings(ClusterSettings(max_unavailable=2), first - 1)
    assert await store.get_cluster_settings() == (ClusterSettings(strategy="spread"), first)
    second = await store.put_cluster_settings(ClusterSettings(max_unavailable=2), first)
    assert await store.get_cluster_settings() == (ClusterSettings(max_unavailable=2), second)

    lease = await store.registry.grant_lease(10)
    won = await store.campaign("m1", lease)
    assert won is not None
    guard = GuardRecord("mass loss", "why", 1.0, 2.0, ("m2",), 3)
    await store.write_fenced([store.guard_op(guard, lease)], won)
    assert await store.get_guard() == guard
    await store.write_fenced([store.guard_op(None, lease)], won)
    assert await store.get_guard() is None
    await store.write_fenced([store.guard_op(guard, lease)], won)
    await store.registry.revoke_lease(lease)  # the leader is gone: so is its guard
    assert await store.get_guard() is None
    with pytest.raises(NotLeader):
        await store.write_fenced([store.guard_op(guard, lease)], won)
