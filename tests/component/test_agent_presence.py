"""Presence against the in-memory registry: lease, re-attach, duplicates, expiry, revoke."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from fleetd.agent.presence import Presence
from fleetd.errors import Conflict
from fleetd.model import Capacity, Machine
from fleetd.registry import codec
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store

KEYS = Keys()
MACHINE = Machine("a" * 32, "host-a", "10.0.0.1", (("role", "web"),), Capacity(2000, 1 << 30))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def presence(
    registry: MemoryRegistry, clock: Clock, lease_file: Path, machine: Machine = MACHINE
) -> Presence:
    return Presence(
        store=Store(registry, KEYS), machine=machine, ttl=3.0, lease_file=lease_file, clock=clock
    )


async def wait_until(cond: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not cond():  # noqa: ASYNC110 - polling a plain predicate with a deadline
            await asyncio.sleep(0.01)


async def test_register_writes_machine_under_lease(tmp_path: Path) -> None:
    clock = Clock()
    reg = MemoryRegistry(clock=clock)
    p = presence(reg, clock, tmp_path / "lease")
    lease = await p.register()
    kv = await reg.get(KEYS.machine(MACHINE.id))
    assert kv is not None and kv.lease == lease
    assert codec.decode_machine(kv.key, kv.value) == MACHINE
    assert await reg.lease_ttl(lease) == 3
    assert p.valid_for(margin=1.0)
    clock.now += 2.5
    assert not p.valid_for(margin=1.0)


async def test_restart_reattaches_to_live_lease(tmp_path: Path) -> None:
    clock = Clock()
    reg = MemoryRegistry(clock=clock)
    first = await presence(reg, clock, tmp_path / "lease").register()
    seen: list[int] = []
    again = presence(reg, clock, tmp_path / "lease")
    again.on_lease = seen.append
    assert await again.register() == first
    assert seen == [first]


async def test_expired_saved_lease_gets_a_new_one(tmp_path: Path) -> None:
    clock = Clock()
    reg = MemoryRegistry(clock=clock)
    first = await presence(reg, clock, tmp_path / "lease").register()
    clock.now += 10
    reg.expire_leases()
    assert await reg.get(KEYS.machine(MACHINE.id)) is None
    second = await presence(reg, clock, tmp_path / "lease").register()
    assert second != first
    kv = await reg.get(KEYS.machine(MACHINE.id))
    assert kv is not None and kv.lease == second


async def test_duplicate_machine_id_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    clock = Clock()
    reg = MemoryRegistry(clock=clock)
    first = await presence(reg, clock, tmp_path / "one").register()
    impostor = Machine(MACHINE.id, "other-host")
    with pytest.raises(
        Conflict, match=f"machine id {MACHINE.id} is already registered by another live fleetd"
    ):
        await presence(reg, clock, tmp_path / "two", impostor).register()
    kv = await reg.get(KEYS.machine(MACHINE.id))
    assert kv is not None and kv.lease == first
    assert codec.decode_machine(kv.key, kv.value).hostname == "host-a"
    assert not (tmp_path / "two").exists()


async def test_run_reregisters_after_the_lease_is_lost(tmp_path: Path) -> None:
    clock = Clock()
    reg = MemoryRegistry(clock=clock)
    leases: list[int] = []
    p = presence(reg, clock, tmp_path / "lease")
    p.on_lease = leases.append
    task = asyncio.create_task(p.run())
    try:
        await wait_until(lambda: len(leases) == 1)
        await reg.revoke_lease(leases[0])
        # "No such lease" is believed only once etcd could have expired it (a TTL after
        # the last refresh): before, it may come from a member that has not applied it.
        clock.now += 3.0
        await wait_until(lambda: len(leases) == 2)
        kv = await reg.get(KEYS.machine(MACHINE.id))
        assert kv is not None and kv.lease == leases[1]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_revoke_removes_machine_and_lease_file(tmp_path: Path) -> None:
    clock = Clock()
    reg = MemoryRegistry(clock=clock)
    p = presence(reg, clock, tmp_path / "lease")
    lease = await p.register()
    await p.revoke()
    assert await reg.get(KEYS.machine(MACHINE.id)) is None
    assert await reg.lease_ttl(lease) == -1
    assert not (tmp_path / "lease").exists()


async def test_run_waits_out_a_duplicate_and_registers_when_it_is_gone(tmp_path: Path) -> None:
    clock = Clock()
    reg = MemoryRegistry(clock=clock)
    other = await presence(reg, clock, tmp_path / "other").register()
    leases: list[int] = []
    p = presence(reg, clock, tmp_path / "lease")
    p.ttl = 0.3  # retry every 0.15 s
    p.on_lease = leases.append
    task = asyncio.create_task(p.run())
    try:
        await asyncio.sleep(0.25)
        assert leases == [] and not p.registered.is_set()
        await reg.revoke_lease(other)  # e.g. this machine's previous boot finally expired
        await wait_until(lambda: len(leases) == 1)
        kv = await reg.get(KEYS.machine(MACHINE.id))
        assert kv is not None and kv.lease == leases[0]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_an_update_is_published_under_the_same_lease(tmp_path: Path) -> None:
    clock = Clock()
    reg = MemoryRegistry(clock=clock)
    p = presence(reg, clock, tmp_path / "lease")
    lease = await p.register()
    publisher = asyncio.create_task(p.publish())
    cut_off = replace(MACHINE, systemd_connected=False)

    async def record() -> Machine | None:
        kv = await reg.get(KEYS.machine(MACHINE.id))
        assert kv is not None and kv.lease == lease
        return codec.decode_machine(kv.key, kv.value)

    async def published(machine: Machine) -> None:
        async with asyncio.timeout(5):
            while await record() != machine:  # noqa: ASYNC110 - registry state, with a deadline
                await asyncio.sleep(0.01)

    try:
        p.update(cut_off)
        await published(cut_off)
        p.update(MACHINE)
        await published(MACHINE)
        # An outage delays the write, it does not lose it.
        reg.set_available(False)
        p.update(cut_off)
        await asyncio.sleep(0.05)
        reg.set_available(True)
        await published(cut_off)
        assert p.lease == lease
    finally:
        publisher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await publisher


async def test_an_update_before_registering_is_what_registers(tmp_path: Path) -> None:
    clock = Clock()
    reg = MemoryRegistry(clock=clock)
    p = presence(reg, clock, tmp_path / "lease")
    cut_off = replace(MACHINE, systemd_connected=False)
    p.update(cut_off)
    await p.register()
    kv = await reg.get(KEYS.machine(MACHINE.id))
    assert kv is not None and codec.decode_machine(kv.key, kv.value) == cut_off
