"""What one ``POST /fleet/v1/plan`` (``fleetctl plan``) costs on a converged cluster,
in-process over the memory registry.

    python benchmarks/plan.py [--units 10000] [--machines 100] [--plans 10]

The cluster (units with reservations, half of them instances of one template,
placed by the engine's own plan and written to the schedule) is written straight
into a ``MemoryRegistry``; plans go through the real app on an in-process
transport.  A plan reads the cluster, parses what its cache of unit files does not
hold and runs the engine's full plan twice (with and without the planned units):
it costs about two full passes of the engine.  Printed: the first plan (its parse
cache cold) and p50 / max of the next ones, for 1 and for 100 planned units.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx

from fleetd.api.app import create_app
from fleetd.engine.mirrors import read_model
from fleetd.engine.plan import Action, plan
from fleetd.engine.settings import EngineSettings
from fleetd.model import Capacity, DesiredState, Machine, Unit
from fleetd.registry.base import Op
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store
from fleetd.unitfile import UnitFile

SHARED = "[Service]\nExecStart=/bin/sleep infinity\n\n[X-Fleet]\nCPUReservation=100m\n"
OWN = "[Service]\nExecStart=/bin/sleep {}\n\n[X-Fleet]\nMemoryReservation=64M\n"


async def seed(store: Store, units: int, machines: int) -> None:
    lease = await store.registry.grant_lease(3600)
    for i in range(machines):
        machine = Machine(f"{i:032x}", f"node{i}", capacity=Capacity(64_000, 256 << 30))
        await store.register_machine(machine, lease)
    for i in range(units):
        name, text = (f"web@{i}.service", SHARED) if i % 2 else (f"u{i}.service", OWN.format(i))
        unit = Unit(name, text, UnitFile.from_text(text).hash, DesiredState.LAUNCHED)
        await store.put_unit(unit)
    settings = EngineSettings()
    model = await read_model(store, settings.defaults, time.monotonic, {})
    now = time.monotonic()
    snap = model.snapshot(
        now, wall=time.time(), grace=5.0, strategy=settings.strategy, drain_batch=None
    )
    ops: list[Op] = [
        store.schedule_op(t.entry)
        for t in plan(snap).tasks
        if t.action is Action.SCHEDULE and t.entry is not None
    ]
    await store.registry.batch(ops)


def body(count: int) -> dict[str, Any]:
    options = UnitFile.from_text(SHARED).to_dicts()
    return {
        "units": [
            {"name": f"new@{i}.service", "desiredState": "launched", "options": options}
            for i in range(count)
        ]
    }


async def plans(client: httpx.AsyncClient, count: int, n: int) -> str:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        response = await client.post("/fleet/v1/plan", json=body(count))
        times.append(time.perf_counter() - began)
        response.raise_for_status()
    ms = [t * 1000 for t in times]
    return f"p50 {statistics.median(ms):8.1f} ms, max {max(ms):8.1f} ms"


async def main(units: int, machines: int, n: int) -> None:
    store = Store(MemoryRegistry())
    began = time.perf_counter()
    await seed(store, units, machines)
    print(
        f"plan: {units} units on {machines} machines "
        f"(seeded and placed in {time.perf_counter() - began:.1f}s), {n} plans each"
    )
    app = create_app(store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://fleetd"
    ) as client:
        began = time.perf_counter()
        response = await client.post("/fleet/v1/plan", json=body(1))
        response.raise_for_status()
        print(f"  first plan (cold parse cache): {(time.perf_counter() - began) * 1000:8.1f} ms")
        print(f"  1 unit planned   : {await plans(client, 1, n)}")
        print(f"  100 units planned: {await plans(client, 100, n)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--plans", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.units, args.machines, args.plans))
