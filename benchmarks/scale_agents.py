"""1,000 simulated agents and 20,000 units against one etcd: steady-state cost, per-change cost.

    .venv/bin/python benchmarks/scale_agents.py [--agents 1000] [--units 20000]
        [--duration 300] [--workers 4] [--changes 20]

Starts a private etcd, one engine process (fleetd's ``Engine``, settings as
fleetd derives them from the agent TTL) and ``--workers`` processes
that simulate the agents between them.  Every simulated agent does what the
real one does towards the registry: grants a lease (``--ttl``, default 30 s
as fleetd's ``agent_ttl``) and registers ``machines/<id>`` under it,
refreshes it on ``Presence``'s schedule (``KeepAliveTiming``: every TTL/2,
failures retried every second), mirrors *its own* ``schedule/<id>/`` prefix
with a real watch (``Store.mirror``) and publishes a state ``active`` for
every unit scheduled to it under its lease.  No systemd.

Then, after every unit is scheduled and its state published:

* steady state for ``--duration`` seconds: CPU of the etcd process and of
  the engine process (utime+stime from /proc) as a share of one core
  (target: together < 5%), the engine's passes meanwhile (how many were full
  passes and how long they took), and false machine losses: ``machines/`` keys
  deleted (or leases lost) while their agents ran (target 0);
* the cost of one scheduling change: ``--changes`` times a unit is pinned to
  another machine (``MachineID=``), so the engine moves it; counted are the
  events delivered to all 1,000 agent watches (2 per move is O(1): one
  delete, one put) and the time from the unit write to the new machine's
  watch seeing its schedule entry.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_seconds, host_line, load, summary

from fleetd.agent.presence import KeepAliveTiming
from fleetd.engine.engine import Engine, EngineSettings
from fleetd.errors import LeaseExpired, RegistryError
from fleetd.etcd_server import EtcdServer
from fleetd.model import Capacity, DesiredState, Machine, Unit, UnitState
from fleetd.registry import codec
from fleetd.registry.base import EventType, Put
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Snapshot, Store
from fleetd.unitfile import UnitFile

TTL = 30  # fleetd's default agent_ttl; set from --ttl in main()
KEYS = Keys("/fleet/")
TEXT = "[Unit]\nDescription=scale {n}\n\n[Service]\nExecStart=/bin/sleep infinity\n"


def machine_id(i: int) -> str:
    return f"{i:08x}" + "a" * 24


def unit_of(name: str, extra: str = "") -> Unit:
    text = TEXT.format(n=name) + extra
    return Unit(name, text, UnitFile.from_text(text).hash, DesiredState.LAUNCHED)


# --- worker: simulated agents ------------------------------------------------------------


class SimAgent:
    def __init__(self, store: Store, index: int, stats: dict[str, object]) -> None:
        self.store = store
        self.id = machine_id(index)
        self.machine = Machine(
            self.id,
            f"sim{index}",
            f"10.{index // 250}.{index % 250}.1",
            (),
            Capacity(8000, 32 << 30),
        )
        self.stats = stats
        self.lease = 0
        self.units: set[str] = set()

    async def run(self, started: asyncio.Event, gate: asyncio.Semaphore) -> None:
        async with gate:
            self.lease = await self.store.registry.grant_lease(TTL)
            await self.store.register_machine(self.machine, self.lease)
        started.set()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._keepalive())
            group.create_task(self._watch())

    async def _keepalive(self) -> None:
        timing = KeepAliveTiming.for_ttl(TTL)
        await asyncio.sleep(random.uniform(0, timing.interval))
        renewed = time.monotonic()
        while True:
            started, ok = time.monotonic(), True
            try:
                await self.store.registry.refresh_lease(self.lease)
            except LeaseExpired:
                self.stats["losses"] += 1  # type: ignore[operator]
                self.lease = await self.store.registry.grant_lease(TTL)
                await self.store.register_machine(self.machine, self.lease)
            except RegistryError:
                self.stats["errors"] += 1  # type: ignore[operator]
                ok = False
            if ok:
                renewed = started
            now = time.monotonic()
            await asyncio.sleep(
                timing.next_attempt(now=now, last_renewed=renewed, started=started, ok=ok)
            )

    async def _watch(self) -> None:
        prefix = KEYS.machine_schedule(self.id)
        async for item in self.store.mirror(prefix):
            now = time.monotonic()
            if isinstance(item, Snapshot):
                names = {k[len(prefix) :] for k in item.items}
            else:
                self.stats["events"] += len(item.events)  # type: ignore[operator]
                names = set(self.units)
                for e in item.events:
                    name = e.key[len(prefix) :]
                    self.stats["arrivals"].append((now, e.type.value, e.key))  # type: ignore[attr-defined]
                    if e.type is EventType.DELETE:
                        names.discard(name)
                    else:
                        names.add(name)
            new, gone = names - self.units, self.units - names
            self.units = names
            if new or gone:
                states = [
                    UnitState(self.id, n, "", "loaded", "active", "running", time.time())
                    for n in sorted(new)
                ]
                await self.store.put_states(self.id, states, self.lease, sorted(gone))


async def worker(endpoint: str, first: int, count: int, step: int) -> None:
    registry = EtcdRegistry([endpoint], timeout=30.0)
    store = Store(registry, KEYS)
    stats: dict[str, object] = {"events": 0, "losses": 0, "errors": 0, "arrivals": []}
    gate = asyncio.Semaphore(32)
    agents = [SimAgent(store, i, stats) for i in range(first, first + count * step, step)]
    started = [asyncio.Event() for _ in agents]
    tasks = [asyncio.create_task(a.run(e, gate)) for a, e in zip(agents, started, strict=True)]
    await asyncio.gather(*(e.wait() for e in started))
    print(json.dumps({"ready": len(agents)}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"stats":
            arrivals = stats["arrivals"]
            stats["arrivals"] = []
            dead = sum(1 for t in tasks if t.done())
            report = {k: v for k, v in stats.items() if k != "arrivals"}
            print(json.dumps({**report, "arrivals": arrivals, "dead": dead}), flush=True)
    for t in tasks:
        t.cancel()
    await registry.close()


# --- engine process ----------------------------------------------------------------------


async def engine(endpoint: str) -> None:
    registry = EtcdRegistry([endpoint], timeout=30.0)
    settings = EngineSettings(leader_ttl=max(2, TTL // 3), at_most_once_grace=max(1.0, TTL / 6))
    eng = Engine(Store(registry, KEYS), "bench-engine", clock=time.monotonic, settings=settings)
    running = asyncio.create_task(eng.run())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"stats":
            m = eng.metrics
            print(
                json.dumps(
                    {
                        "passes": m.reconciles_total,
                        "full": m.full_reconciles_total,
                        "seconds": m.reconcile_seconds_total,
                        "last": m.reconcile_seconds,
                    }
                ),
                flush=True,
            )
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    await registry.close()


# --- coordinator -------------------------------------------------------------------------


class Proc:
    def __init__(self, *args: str) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, command: str) -> dict[str, object]:
        assert self.popen.stdin is not None and self.popen.stdout is not None
        if command:
            self.popen.stdin.write(command + "\n")
            self.popen.stdin.flush()
        line = self.popen.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.popen.pid} ended (exit {self.popen.wait()})")
        return json.loads(line)  # type: ignore[no-any-return]

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            assert self.popen.stdin is not None
            self.popen.stdin.close()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


async def count(registry: EtcdRegistry, prefix: str) -> int:
    items, _ = await registry.get_prefix(prefix)
    return len(items)


async def until_count(registry: EtcdRegistry, prefix: str, n: int, within: float) -> float:
    started = time.monotonic()
    while (have := await count(registry, prefix)) < n:
        if time.monotonic() - started > within:
            raise SystemExit(f"only {have}/{n} keys under {prefix} after {within:.0f} s")
        await asyncio.sleep(2)
    return time.monotonic() - started


def engine_passes(before: dict[str, object], after: dict[str, object]) -> tuple[int, int, float]:
    """Passes, full passes and seconds spent between two ``stats`` answers of the engine."""
    passes, full = (int(after[k]) - int(before[k]) for k in ("passes", "full"))  # type: ignore[call-overload]
    return passes, full, float(after["seconds"]) - float(before["seconds"])  # type: ignore[arg-type]


async def coordinate(args: argparse.Namespace, etcd: EtcdServer) -> None:
    endpoint = etcd.endpoint
    registry = EtcdRegistry([endpoint], timeout=30.0)
    store = Store(registry, KEYS)
    await store.ensure_schema()
    print(
        f"{args.agents} agents (lease TTL {args.ttl} s, refreshed every "
        f"{KeepAliveTiming.for_ttl(args.ttl).interval:g} s) in "
        f"{args.workers} processes, {args.units} units; load {load()}"
    )
    began = time.monotonic()
    workers = [
        Proc(
            "--worker",
            str(w),
            "--of",
            str(args.workers),
            "--agents",
            str(args.agents),
            "--ttl",
            str(args.ttl),
            endpoint,
        )
        for w in range(args.workers)
    ]
    eng: Proc | None = None
    try:
        for w in workers:
            w.ask("")  # ready
        print(f"  {args.agents} agents registered in {time.monotonic() - began:.1f} s")
        ops = [
            Put(KEYS.unit(f"s{i}.service"), codec.encode_unit(unit_of(f"s{i}.service")))
            for i in range(args.units)
        ]
        await registry.batch(ops)
        began = time.monotonic()
        eng = Proc("--engine", "--ttl", str(args.ttl), endpoint)
        await until_count(registry, KEYS.schedule, args.units, 600)
        took = await until_count(registry, KEYS.states, args.units, 600)
        print(
            f"  {args.units} units scheduled and every state published "
            f"{time.monotonic() - began:.1f} s after the engine started "
            f"(states complete {took:.1f} s after the schedule)"
        )
        _, revision = await registry.get_prefix(KEYS.version)
        losses_before = sum(int(w.ask("stats")["losses"]) for w in workers)  # type: ignore[call-overload]
        await asyncio.sleep(10)  # the engine's pass that confirms the placements

        # steady state
        deleted: list[str] = []

        async def watch_losses() -> None:
            async for events in registry.watch_prefix(KEYS.machines, revision + 1):
                deleted.extend(e.key for e in events if e.type is EventType.DELETE)

        watcher = asyncio.create_task(watch_losses())
        etcd_pid, eng_pid = etcd.pid or 0, eng.popen.pid
        worker_pids = [w.popen.pid for w in workers]
        engine0 = eng.ask("stats")
        e0, g0, w0 = cpu_seconds(etcd_pid), cpu_seconds(eng_pid), sum(map(cpu_seconds, worker_pids))
        load0, t0 = load(), time.monotonic()
        await asyncio.sleep(args.duration)
        wall = time.monotonic() - t0
        e1, g1, w1 = cpu_seconds(etcd_pid), cpu_seconds(eng_pid), sum(map(cpu_seconds, worker_pids))
        engine1 = eng.ask("stats")
        stats = [w.ask("stats") for w in workers]
        losses = sum(int(s["losses"]) for s in stats) - losses_before  # type: ignore[call-overload]
        dead = sum(int(s["dead"]) for s in stats)  # type: ignore[call-overload]
        etcd_pct, eng_pct = (e1 - e0) / wall * 100, (g1 - g0) / wall * 100
        print(
            f"  steady state {wall:.0f} s (load {load0} -> {load()}): etcd {etcd_pct:.2f}% "
            f"+ engine {eng_pct:.2f}% = {etcd_pct + eng_pct:.2f}% of one core (target < 5%); "
            f"simulated agents {(w1 - w0) / wall * 100:.1f}% (all {args.workers} processes)"
        )
        passes, full, spent = engine_passes(engine0, engine1)
        print(
            f"  engine passes in the steady state: {passes} ({full} full), {spent:.2f} s in "
            f"all; the last before it took {float(engine0['last']):.2f} s"  # type: ignore[arg-type]
        )
        print(
            f"  false machine losses: {len(deleted)} machine keys deleted, {losses} leases "
            f"lost, {dead} agents stopped (target 0)"
        )

        # one scheduling change at a time
        events_before = sum(int(s["events"]) for s in stats)  # type: ignore[call-overload]
        engine0 = eng.ask("stats")
        latencies: list[float] = []
        watches: list[int] = []  # agent watches that saw anything, per move
        for i in range(args.changes):
            name = f"s{i * 97 % args.units}.service"
            items, _ = await registry.get_prefix(KEYS.schedule)
            current = next(kv.key.split("/")[-2] for kv in items if kv.key.endswith("/" + name))
            target = machine_id(random.Random(i).randrange(args.agents))
            if target == current:
                target = machine_id((int(current[:8], 16) + 1) % args.agents)
            unit = unit_of(name, f"\n[X-Fleet]\nMachineID={target}\n")
            sent = time.monotonic()
            await registry.put(KEYS.unit(name), codec.encode_unit(unit))
            seen: list[list[object]] = []
            deadline = sent + 10
            while not any(a[1] == "put" and str(a[2]).endswith(f"/{target}/{name}") for a in seen):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name} never reached {target}'s watch")
                await asyncio.sleep(0.02)
                seen += [a for w in workers for a in w.ask("stats")["arrivals"]]  # type: ignore[attr-defined]
            arrived = next(float(a[0]) for a in seen if str(a[2]).endswith(f"/{target}/{name}"))  # type: ignore[arg-type]
            latencies.append(arrived - sent)
            await asyncio.sleep(0.5)  # anything else this move caused
            seen += [a for w in workers for a in w.ask("stats")["arrivals"]]  # type: ignore[attr-defined]
            watches.append(len({str(a[2]).split("/")[-2] for a in seen}))
        stats = [w.ask("stats") for w in workers]
        delivered = sum(int(s["events"]) for s in stats) - events_before  # type: ignore[call-overload]
        print(
            f"  {args.changes} moves of one unit: {delivered} events delivered to all "
            f"{args.agents} agent watches together ({delivered / args.changes:.1f} per move; "
            f"O(1) = 2: a delete for the old machine, a put for the new one); watches that "
            f"saw any event per move: {min(watches)}-{max(watches)} of {args.agents}"
        )
        print(f"  unit write -> new machine's watch has its entry: {summary(latencies)}")
        passes, full, spent = engine_passes(engine0, eng.ask("stats"))
        print(
            f"  engine passes for the moves: {passes} ({full} full: a constraint change of a "
            f"placed unit needs one), {spent / max(1, passes) * 1000:.0f} ms each on average"
        )
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    finally:
        for w in workers:
            w.stop()
        if eng is not None:
            eng.popen.terminate()
            eng.stop()
        await registry.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--units", type=int, default=20000)
    parser.add_argument("--duration", type=float, default=300.0, help="steady-state seconds")
    parser.add_argument("--workers", type=int, default=4, help="processes simulating agents")
    parser.add_argument("--changes", type=int, default=20, help="single-unit moves to time")
    parser.add_argument("--ttl", type=int, default=30, help="agent lease TTL (s)")
    parser.add_argument("--fsync", action="store_true", help="let etcd fsync")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--of", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--engine", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("endpoint", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global TTL
    TTL = args.ttl
    if args.worker is not None:
        count_ = len(range(args.worker, args.agents, args.of))
        asyncio.run(worker(args.endpoint, args.worker, count_, args.of))
        return
    if args.engine:
        asyncio.run(engine(args.endpoint))
        return
    print(host_line())
    with tempfile.TemporaryDirectory(prefix="fleetd-scale-") as tmp:
        etcd = EtcdServer(Path(tmp) / "etcd", unsafe_no_fsync=not args.fsync)
        etcd.start()
        try:
            asyncio.run(coordinate(args, etcd))
        finally:
            etcd.stop()


if __name__ == "__main__":
    main()
