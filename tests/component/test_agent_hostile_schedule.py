"""Schedule entries written straight into the registry (bypassing the Store's checks) under
hostile names: the agent's schedule view drops every one of them, from the initial read
and from the watch, so no path is ever built from them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from fleetd.agent.desired import ScheduleView
from fleetd.model import DesiredState, ScheduleEntry
from fleetd.registry import codec
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store

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


async def until(cond: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not cond():  # noqa: ASYNC110 - polling a plain predicate with a deadline
            await asyncio.sleep(0.005)


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
        await until(lambda: "db.service" in view.entries)
        assert set(view.entries) == {"web.service", "db.service"}
        await view.refresh()
        assert set(view.entries) == {"web.service", "db.service"}
        assert all(e.name in ("web.service", "db.service") for e in view.entries.values())
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
