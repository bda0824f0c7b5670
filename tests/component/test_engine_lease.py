"""The leader lease against a real etcd: kept while the engine's event loop is busy computing
(refreshed from a thread of its own, engine/keeper.py), and given up when it is gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

import fleetd.engine.engine as engine_module
from fleetd.engine.engine import Engine, EngineSettings
from fleetd.engine.plan import ClusterSnapshot, Plan
from fleetd.etcd_server import EtcdServer
from fleetd.model import Capacity, DesiredState, Machine, Unit
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Store
from fleetd.unitfile import UnitFile

TTL = 2
"""The shortest leader lease (seconds): the leader acts until 1.67 s after a refresh."""

TEXT = "[Service]\nExecStart=/bin/sleep infinity\n"


def busy(seconds: float) -> None:
    """CPU work in Python on the calling thread (the GIL is handed over between bytecodes)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(1000))


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def store(etcd_registry: EtcdRegistry, key_prefix: str) -> Store:
    store = Store(etcd_registry, Keys(key_prefix))
    await store.ensure_schema()
    machine = Machine("m1" + "0" * 30, "m1", "10.0.0.1", (), Capacity(8000, 8 << 30))
    await store.register_machine(machine, await etcd_registry.grant_lease(60))
    await store.put_unit(
        Unit("web.service", TEXT, UnitFile.from_text(TEXT).hash, DesiredState.LAUNCHED)
    )
    return store


@pytest.fixture
async def engine(etcd_server: EtcdServer, store: Store) -> AsyncIterator[Engine]:
    settings = EngineSettings(leader_ttl=TTL, plan_in_thread=False, debounce=0.001)
    engine = Engine(
        store,
        "e1",
        clock=time.monotonic,
        settings=settings,
        lease_registry=lambda: EtcdRegistry([etcd_server.endpoint], timeout=5.0),
    )
    running = asyncio.create_task(engine.run())
    try:
        yield engine
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running


async def placed(store: Store) -> bool:
    return [e.name for e in await store.list_schedule("m1" + "0" * 30)] == ["web.service"]


@pytest.fixture
def planned(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The engine's first full pass made slow: 3 lease TTLs of CPU on its event loop (no
    thread: ``plan_in_thread=False``); how long it took, once it ran."""
    planned: list[float] = []
    real_plan = engine_module.plan

    def slow_plan(snapshot: ClusterSnapshot) -> Plan:
        if not planned:
            started = time.monotonic()
            busy(3 * TTL)
            planned.append(time.monotonic() - started)
        return real_plan(snapshot)

    monkeypatch.setattr(engine_module, "plan", slow_plan)
    return planned


async def test_a_leader_busy_on_its_loop_for_three_lease_ttls_keeps_its_lease(
    planned: list[float], engine: Engine, store: Store
) -> None:
    await eventually(lambda: placed(store), "the unit placed")
    assert planned and planned[0] >= 3 * TTL
    # Placed by the term that computed it: the lease outlived the busy loop.
    assert engine.leadership.elections == 1
    assert engine.metrics.leader_changes_total == 1
    leader = await store.current_leader()
    assert leader is not None and leader.lease == engine.leadership.lease


async def test_a_leader_whose_lease_is_gone_steps_down_and_is_elected_again(
    engine: Engine, store: Store, etcd_registry: EtcdRegistry
) -> None:
    await eventually(lambda: placed(store), "the unit placed")
    lease = engine.leadership.lease
    await etcd_registry.revoke_lease(lease)  # as etcd does when it expires

    async def new_term() -> bool:
        leader = await store.current_leader()
        return engine.leadership.elections == 2 and leader is not None and leader.lease != lease

    await eventually(new_term, "a new term under a new lease")
    assert engine.leadership.leading() is not None
