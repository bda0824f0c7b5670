"""What only the in-memory registry offers: the injected clock, outages, bounded history."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from fleetd.errors import InvalidInput, RegistryUnavailable, WatchCompacted
from fleetd.registry.base import Put
from fleetd.registry.memory import MemoryRegistry

if TYPE_CHECKING:
    from tests.conftest import FakeClock


async def test_leases_follow_the_injected_clock(
    memory_registry: MemoryRegistry, clock: FakeClock
) -> None:
    lease = await memory_registry.grant_lease(10)
    await memory_registry.put("/k", b"", lease=lease)
    clock.advance(9.5)
    assert memory_registry.expire_leases() == 0
    assert await memory_registry.lease_ttl(lease) == 0
    clock.advance(0.5)
    assert await memory_registry.get("/k") is None  # expired on access
    assert await memory_registry.lease_ttl(lease) == -1


async def test_outage_refuses_calls_and_watches_catch_up(memory_registry: MemoryRegistry) -> None:
    watch = memory_registry.watch_prefix("/p/", memory_registry.revision + 1)
    await memory_registry.put("/p/a", b"1")
    memory_registry.set_available(False)
    with pytest.raises(RegistryUnavailable):
        await memory_registry.get("/p/a")
    pending = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0)
    assert not pending.done()
    memory_registry.set_available(True)
    events = await asyncio.wait_for(pending, 5)
    assert [e.key for e in events] == ["/p/a"]
    await watch.aclose()  # type: ignore[attr-defined]


async def test_bounded_history_compacts_old_revisions(clock: FakeClock) -> None:
    registry = MemoryRegistry(clock, max_history=10)
    first = await registry.put("/p/a", b"")
    for i in range(20):
        await registry.put(f"/p/{i}", b"")
    with pytest.raises(WatchCompacted):
        await anext(registry.watch_prefix("/p/", first))
    recent = registry.watch_prefix("/p/", registry.revision - 5)
    assert len(await anext(recent)) == 6
    await recent.aclose()  # type: ignore[attr-defined]


async def test_close_ends_watches_and_calls(memory_registry: MemoryRegistry) -> None:
    watch = memory_registry.watch_prefix("/p/", 0)
    pending = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0)
    await memory_registry.close()
    with pytest.raises(RegistryUnavailable):
        await asyncio.wait_for(pending, 5)
    with pytest.raises(RegistryUnavailable):
        await memory_registry.txn([], [Put("/p/x", b"")])


async def test_oversized_request_is_invalid_input(memory_registry: MemoryRegistry) -> None:
    with pytest.raises(InvalidInput, match="too large"):
        await memory_registry.put("/big", b"x" * 2_000_000)
    with pytest.raises(InvalidInput):
        await memory_registry.grant_lease(0)


async def test_a_watch_from_a_future_revision_skips_earlier_events(
    memory_registry: MemoryRegistry,
) -> None:
    start = memory_registry.revision + 3
    watch = memory_registry.watch_prefix("/p/", start)
    pending = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0)
    for name in "abcd":
        await memory_registry.put(f"/p/{name}", b"")
    events = await asyncio.wait_for(pending, 5)
    assert [e.key for e in events] == ["/p/c"] and events[0].mod_revision == start
    await watch.aclose()  # type: ignore[attr-defined]
