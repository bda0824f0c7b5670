"""Engine benchmark against a real etcd: placements/s including the etcd writes.

    .venv/bin/python benchmarks/engine_etcd.py [--small] [--strategy spread] [--fsync]

Starts a private etcd (fsync off unless --fsync), registers simulated
machines (each under its own lease, as agents do; no systemd), submits the
mixed workload of benchmarks/workload.py as unit files with [X-Fleet]
sections, then starts one Engine and times it until its first pass has
written every placement.  Printed per size:

- placements/s from the loaded model to the last write (the plan in a
  worker thread plus fenced transactions of <= 128 operations), and from
  engine start (including leader election and reading/parsing every unit);
- etcd operations and transactions per placement;
- CPU seconds of this process (engine + client) and of etcd;
- peak RSS of this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import machines, units

from fleetd.engine.engine import Engine, EngineSettings
from fleetd.engine.index import Strategy
from fleetd.etcd_server import EtcdServer
from fleetd.model import DesiredState, Unit
from fleetd.registry import codec
from fleetd.registry.base import Put
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Store
from fleetd.requirements import Requirements
from fleetd.unitfile import UnitFile

SIZES = ((10_000, 1_000), (100_000, 5_000))


def unit_file(req: Requirements) -> str:
    """A unit file whose [X-Fleet] section parses back to ``req``."""
    fleet = []
    if req.machine_id:
        fleet.append(f"MachineID={req.machine_id}")
    fleet += [f"MachineOf={peer}" for peer in req.machine_of]
    fleet += [f"MachineMetadata={cond}" for cond in req.metadata]
    fleet += [f"Conflicts={glob}" for glob in req.conflicts]
    if req.global_:
        fleet.append("Global=true")
    if req.cpu_millis:
        fleet.append(f"CPUReservation={req.cpu_millis}m")
    if req.memory_bytes:
        fleet.append(f"MemoryReservation={req.memory_bytes}")
    return "[Service]\nExecStart=/bin/sleep infinity\n\n[X-Fleet]\n" + "\n".join(fleet) + "\n"


def etcd_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks


async def populate(store: Store, n_units: int, n_machines: int) -> None:
    fleet = machines(n_machines)
    sem = asyncio.Semaphore(64)

    async def register(machine: object) -> None:
        async with sem:
            lease = await store.registry.grant_lease(600)
            await store.register_machine(machine, lease)  # type: ignore[arg-type]

    await asyncio.gather(*(register(m) for m in fleet))
    ops = []
    for name, req in units(n_units, fleet):
        text = unit_file(req)
        unit = Unit(name, text, UnitFile.from_text(text).hash, DesiredState.LAUNCHED)
        ops.append(Put(store.keys.unit(name), codec.encode_unit(unit)))
    await store.registry.batch(ops)


async def run(etcd: EtcdServer, n_units: int, n_machines: int, strategy: Strategy) -> None:
    registry = EtcdRegistry([etcd.endpoint], timeout=30.0)
    store = Store(registry, Keys(f"/bench-{n_units}-{strategy}/"))
    started = time.perf_counter()
    await populate(store, n_units, n_machines)
    print(
        f"{n_units} units / {n_machines} machines [{strategy}]: "
        f"registered and submitted in {time.perf_counter() - started:.1f}s"
    )

    settings = EngineSettings(strategy=strategy, interval=3600.0, leader_ttl=10)
    engine = Engine(store, "bench-engine", clock=time.monotonic, settings=settings)
    etcd_pid = etcd.pid or 0
    cpu0, etcd0, wall0 = time.process_time(), etcd_cpu(etcd_pid), time.perf_counter()
    task = asyncio.get_running_loop().create_task(engine.run())
    loaded_at = loaded_cpu = 0.0
    while engine.metrics.reconciles_total == 0:
        if not loaded_at and engine._loaded.is_set():
            loaded_at, loaded_cpu = time.perf_counter(), time.process_time()
        if task.done():
            task.result()
        await asyncio.sleep(0.001)
    done = time.perf_counter()
    cpu, etcd_used = time.process_time() - cpu0, etcd_cpu(etcd_pid) - etcd0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    m = engine.metrics
    placed = m.placements_total
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  leader changes: {m.leader_changes_total}, passes: {m.reconciles_total}\n"
        f"  {placed} placements ({m.unplaceable} unplaceable) in {done - loaded_at:.2f}s "
        f"after the model was loaded: {placed / (done - loaded_at):,.0f} placements/s "
        f"(plan {m.plan_seconds:.2f}s, writes {m.reconcile_seconds - m.plan_seconds:.2f}s)\n"
        f"  from engine start: {done - wall0:.2f}s, {placed / (done - wall0):,.0f} placements/s "
        f"(election + reading and parsing {n_units} units: {loaded_at - wall0:.2f}s)\n"
        f"  etcd: {m.write_ops_total / placed:.3f} operations and "
        f"{m.write_transactions_total / placed:.4f} transactions per placement "
        f"({m.write_transactions_total} transactions)\n"
        f"  CPU: {cpu:.2f}s engine process ({time.process_time() - loaded_cpu:.2f}s after the "
        f"model was loaded), {etcd_used:.2f}s etcd; peak RSS {rss:.0f} MiB"
    )
    await registry.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", choices=[s.value for s in Strategy], default="binpack")
    parser.add_argument("--small", action="store_true", help="only 10,000 units / 1,000 machines")
    parser.add_argument("--large", action="store_true", help="only 100,000 units / 5,000 machines")
    parser.add_argument("--fsync", action="store_true", help="let etcd fsync (slower disks)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleetd-bench-") as tmp:
        etcd = EtcdServer(Path(tmp) / "etcd", unsafe_no_fsync=not args.fsync)
        etcd.start()
        try:
            sizes = SIZES[:1] if args.small else SIZES[1:] if args.large else SIZES
            for n_units, n_machines in sizes:
                await run(etcd, n_units, n_machines, Strategy(args.strategy))
        finally:
            etcd.stop()


if __name__ == "__main__":
    asyncio.run(main())
