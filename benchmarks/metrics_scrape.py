"""What one ``GET /metrics`` costs with 10,000 units, in-process over the memory registry.

    python benchmarks/metrics_scrape.py [--units 10000] [--machines 100] [--scrapes 50]

The cluster (units, schedule entries, every unit's state, a placement reason
per hundred units) is written straight into a ``MemoryRegistry``; scrapes go
through the real app on an in-process transport.  Three ways a fleetd counts
the cluster are timed:

- ``read every scrape``: ``cluster_ttl=0``, a registry read of the cluster per
  scrape (what every scrape cost before the counts were kept; it read the
  states too);
- ``within the TTL``: another machine leads: the read is kept for
  ``cluster_ttl`` seconds, so the scrapes between two reads read nothing;
- ``engine leads here``: the counts come from the engine's model.

Each line: scrape time p50 / mean in ms, range reads per scrape, body size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from typing import Any

import httpx

from fleetd.api.app import create_app
from fleetd.engine.engine import Engine, EngineSettings
from fleetd.model import Capacity, DesiredState, Machine, Placement, ScheduleEntry, Unit, UnitState
from fleetd.readings import EngineReadings
from fleetd.registry.base import KeyValue, Op
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store
from fleetd.unitfile import UnitFile

TEXT = "[Service]\nExecStart=/bin/sleep infinity\n# {}\n"


class CountingRegistry(MemoryRegistry):
    """Counts range reads (``get_prefix``, the registry's only one)."""

    range_reads = 0

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        self.range_reads += 1
        return await super().get_prefix(prefix)


async def seed(store: Store, units: int, machines: int) -> None:
    lease = await store.registry.grant_lease(3600)
    ids = [f"{i:032x}" for i in range(machines)]
    for mid in ids:
        await store.register_machine(Machine(mid, capacity=Capacity(10**6, 1 << 40)), lease)
    ops: list[Op] = []
    states: dict[str, list[UnitState]] = {mid: [] for mid in ids}
    for i in range(units):
        name, text = f"u{i}.service", TEXT.format(i)
        unit = Unit(name, text, UnitFile.from_text(text).hash, DesiredState.LAUNCHED)
        await store.put_unit(unit)
        if i % 100 == 99:
            ops.append(store.placement_op(Placement(name, "no machine fits")))
            continue
        mid = ids[i % machines]
        ops.append(store.schedule_op(ScheduleEntry(mid, name, unit.hash, unit.desired)))
        states[mid].append(UnitState(mid, name, unit.hash, "loaded", "active", "running"))
    await store.registry.batch(ops)
    for mid, found in states.items():
        await store.put_states(mid, found, lease)


async def scrapes(app: Any, registry: CountingRegistry, n: int) -> str:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://fleetd"
    ) as client:
        await client.get("/metrics")  # the first read of a TTL, and imports
        registry.range_reads = 0
        times = []
        size = 0
        for _ in range(n):
            began = time.perf_counter()
            response = await client.get("/metrics")
            times.append(time.perf_counter() - began)
            size = len(response.content)
    ms = [t * 1000 for t in times]
    return (
        f"p50 {statistics.median(ms):7.2f} ms, mean {statistics.fmean(ms):7.2f} ms, "
        f"{registry.range_reads / n:.0f} range reads/scrape, {size} bytes"
    )


async def main(units: int, machines: int, n: int) -> None:
    registry = CountingRegistry()
    store = Store(registry)
    began = time.perf_counter()
    await seed(store, units, machines)
    print(
        f"metrics_scrape: {units} units on {machines} machines "
        f"(seeded in {time.perf_counter() - began:.1f}s), {n} scrapes each"
    )
    every = create_app(store, cluster_ttl=0)
    print(f"  read every scrape : {await scrapes(every, registry, n)}")
    kept = create_app(store, cluster_ttl=3600)
    print(f"  within the TTL    : {await scrapes(kept, registry, n)}")

    settings = EngineSettings(plan_in_thread=False, idle_interval=3600)
    engine = Engine(store, "engine", clock=time.monotonic, settings=settings)
    task = asyncio.create_task(engine.run(), name="engine")
    readings = EngineReadings(engine)
    try:
        async with asyncio.timeout(300):  # until it leads, loaded and passed once
            while not (engine.metrics.reconciles_total and readings.cluster()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        leading = create_app(store, engine=readings)
        print(f"  engine leads here : {await scrapes(leading, registry, n)}")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.units, args.machines, args.scrapes))
