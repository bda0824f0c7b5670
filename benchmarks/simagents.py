"""Simulated agents and an engine in processes of their own, for the scale benchmarks (a helper).

``Cluster`` starts ``workers`` processes (this file, ``--worker``) that simulate
the agents between them, and one engine process (``--engine``: fleetd's
``Engine``, settings as fleetd derives them from the agent TTL), all against
one etcd; each answers ``stats`` on its stdin with one line of JSON.

Every simulated agent does what the real one does towards the registry:
grants a lease (the agent TTL) and registers ``machines/<id>`` under it,
refreshes it on ``Presence``'s schedule (``KeepAliveTiming``: every TTL/2,
failures retried every second), mirrors *its own* ``schedule/<id>/`` prefix
with a real watch (``Store.mirror``) and, for every unit scheduled to it (or
given another hash), publishes a state ``active`` and healthy with that hash
under its lease, ``start_time`` seconds later (systemd's part, simulated).
No systemd.
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
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path

from _common import cpu_seconds, host_line, load

from fleetd.agent.presence import KeepAliveTiming
from fleetd.engine.engine import Engine, EngineSettings
from fleetd.errors import LeaseExpired, RegistryError
from fleetd.etcd_server import EtcdServer
from fleetd.model import Capacity, DesiredState, Health, Machine, Unit, UnitState
from fleetd.registry import codec
from fleetd.registry.base import EventType, Put
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Changes, Snapshot, Store
from fleetd.unitfile import UnitFile

KEYS = Keys("/fleet/")
AGENTS_PER_CONNECTION = 25
TEXT = "[Unit]\nDescription=scale {n}\n\n[Service]\nExecStart=/bin/sleep infinity\n"


def machine_id(i: int) -> str:
    return f"{i:08x}" + "a" * 24


def unit_of(name: str, extra: str = "", text: str = TEXT) -> Unit:
    full = text.format(n=name) + extra
    return Unit(name, full, UnitFile.from_text(full).hash, DesiredState.LAUNCHED)


# --- worker: simulated agents ------------------------------------------------------------


class SimAgent:
    def __init__(
        self, store: Store, index: int, ttl: int, start_time: float, stats: dict[str, object]
    ) -> None:
        self.store = store
        self.id = machine_id(index)
        self.machine = Machine(
            self.id,
            f"sim{index}",
            f"10.{index // 250}.{index % 250}.1",
            (),
            Capacity(8000, 32 << 30),
        )
        self.ttl = ttl
        self.start_time = start_time
        self.stats = stats
        self.lease = 0
        self.units: dict[str, str] = {}  # scheduled here: name -> hash
        self.since: dict[str, float] = {}  # when each was (re)started
        self.published: dict[str, str] = {}  # states up under the lease: name -> hash
        self.changed = asyncio.Event()

    async def run(self, started: asyncio.Event, gate: asyncio.Semaphore) -> None:
        async with gate:
            self.lease = await self.store.registry.grant_lease(self.ttl)
            await self.store.register_machine(self.machine, self.lease)
        started.set()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._keepalive())
            group.create_task(self._watch())
            group.create_task(self._publish())

    async def _keepalive(self) -> None:
        timing = KeepAliveTiming.for_ttl(self.ttl)
        await asyncio.sleep(random.uniform(0, timing.interval))
        renewed = time.monotonic()
        while True:
            started, ok = time.monotonic(), True
            try:
                if self.lease:
                    await self.store.registry.refresh_lease(self.lease)
                else:  # lost: registered again under a new lease, its states put again
                    lease = await self.store.registry.grant_lease(self.ttl)
                    await self.store.register_machine(self.machine, lease)
                    self.published.clear()
                    self.lease = lease  # the publisher waits for it
                    self.changed.set()
            except LeaseExpired:
                self.stats["losses"] += 1  # type: ignore[operator]
                self.lease, ok = 0, False
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
        store = self.store
        while True:
            try:
                async for item in store.mirror(prefix):
                    self._apply(prefix, item)
            except RegistryError:  # as the agent's schedule view, read again
                self.stats["errors"] += 1  # type: ignore[operator]
                await asyncio.sleep(1.0)

    def _apply(self, prefix: str, item: Snapshot | Changes) -> None:
        now = time.monotonic()
        store = self.store
        if isinstance(item, Snapshot):
            want = {
                k[len(prefix) :]: store.schedule_from(k, kv.value).hash
                for k, kv in item.items.items()
            }
        else:
            self.stats["events"] += len(item.events)  # type: ignore[operator]
            want = dict(self.units)
            tracking = self.stats["tracking"]
            for e in item.events:
                name = e.key[len(prefix) :]
                if tracking:
                    self.stats["arrivals"].append((now, e.type.value, e.key))  # type: ignore[attr-defined]
                if e.type is EventType.DELETE:
                    want.pop(name, None)
                else:
                    want[name] = store.schedule_from(e.key, e.value).hash
        for name, unit_hash in want.items():
            if self.units.get(name) != unit_hash:
                self.since[name] = now  # (re)started now: up start_time later
        self.units = want
        self.changed.set()

    async def _publish(self) -> None:
        """States of the units started ``start_time`` ago put, those of units gone deleted,
        under the lease; after a failure, again a second later (as the agent's publisher)."""
        while True:
            now = time.monotonic()
            gone = sorted(n for n in self.published if n not in self.units)
            pending = {n: h for n, h in self.units.items() if self.published.get(n) != h}
            due = {n: h for n, h in pending.items() if self.since[n] + self.start_time <= now}
            if not self.lease:  # being registered again
                await asyncio.sleep(1.0)
                continue
            if not (gone or due):
                self.changed.clear()
                later = [self.since[n] + self.start_time for n in pending]
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(later) - now if later else None):
                        await self.changed.wait()
                continue
            states = [
                UnitState(self.id, n, h, "loaded", "active", "running", time.time(), Health.HEALTHY)
                for n, h in sorted(due.items())
            ]
            lease = self.lease
            try:
                await self.store.put_states(self.id, states, lease, gone)
            except RegistryError:
                self.stats["errors"] += 1  # type: ignore[operator]
                await asyncio.sleep(1.0)
                continue
            if lease != self.lease:
                continue  # registered again meanwhile: everything is put again
            for name in gone:
                self.published.pop(name, None)
                if name not in self.units:  # (it may have come back meanwhile)
                    self.since.pop(name, None)
            self.published.update(due)


async def worker(args: argparse.Namespace) -> None:
    # A connection per few agents: one EtcdRegistry sends one keep-alive at a time, and
    # a real agent has its own.
    mine = range(args.worker, args.agents, args.of)
    registries = [
        EtcdRegistry([args.endpoint], timeout=30.0)
        for _ in range(0, len(mine), args.per_connection)
    ]
    stores = [Store(r, KEYS) for r in registries]
    stats: dict[str, object] = {
        "events": 0,
        "losses": 0,
        "errors": 0,
        "tracking": False,
        "arrivals": [],
    }
    gate = asyncio.Semaphore(32)
    agents = [
        SimAgent(stores[n // args.per_connection], i, args.ttl, args.start_time, stats)
        for n, i in enumerate(mine)
    ]
    started = [asyncio.Event() for _ in agents]
    tasks = [asyncio.create_task(a.run(e, gate)) for a, e in zip(agents, started, strict=True)]
    for task in tasks:
        task.add_done_callback(_stopped)
    await asyncio.gather(*(e.wait() for e in started))
    print(json.dumps({"ready": len(agents)}), flush=True)
    async for command in _commands():
        if command == "track":
            stats["tracking"] = True
        arrivals = stats["arrivals"]
        stats["arrivals"] = []
        dead = sum(1 for t in tasks if t.done())
        report = {k: v for k, v in stats.items() if k != "arrivals"}
        print(json.dumps({**report, "arrivals": arrivals, "dead": dead}), flush=True)
    for t in tasks:
        t.cancel()
    for registry in registries:
        await registry.close()


def _stopped(task: asyncio.Task[None]) -> None:
    """A simulated agent ended (it should not): why, on stderr."""
    error = None if task.cancelled() else task.exception()
    if error is not None:
        lines = traceback.format_exception(error)
        print(f"simulated agent stopped: {''.join(lines)}", file=sys.stderr, flush=True)


# --- engine process ----------------------------------------------------------------------


async def engine(args: argparse.Namespace) -> None:
    registry = EtcdRegistry([args.endpoint], timeout=30.0)
    ttl = args.ttl
    settings = EngineSettings(leader_ttl=max(2, ttl // 3), at_most_once_grace=max(1.0, ttl / 6))
    eng = Engine(
        Store(registry, KEYS),
        "bench-engine",
        clock=time.monotonic,
        settings=settings,
        lease_registry=lambda: EtcdRegistry([args.endpoint], timeout=30.0),
    )
    running = asyncio.create_task(eng.run())
    async for _ in _commands():
        m = eng.metrics
        print(
            json.dumps(
                {
                    "passes": m.reconciles_total,
                    "full": m.full_reconciles_total,
                    "seconds": m.reconcile_seconds_total,
                    "last": m.reconcile_seconds,
                    "why": str(eng.last_full_reason),
                }
            ),
            flush=True,
        )
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    await registry.close()


async def _commands() -> AsyncIterator[str]:
    """The lines on stdin, until it closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        yield line.decode().strip()


# --- the coordinator's side --------------------------------------------------------------


class Proc:
    """This file run as a worker or the engine, asked for ``stats`` over a pipe."""

    def __init__(self, *args: str) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, command: str = "stats") -> dict[str, object]:
        assert self.popen.stdin is not None and self.popen.stdout is not None
        if command:
            self.popen.stdin.write(command + "\n")
            self.popen.stdin.flush()
        line = self.popen.stdout.readline()
        if not line:
            raise SystemExit(f"process {self.popen.pid} ended (exit {self.popen.wait()})")
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


class Cluster:
    """The simulated agents (``workers`` processes) and, once started, the engine."""

    def __init__(
        self, endpoint: str, *, agents: int, workers: int, ttl: int, start_time: float = 0.0
    ) -> None:
        self.endpoint, self.ttl = endpoint, ttl
        common = ("--agents", str(agents), "--ttl", str(ttl), "--start-time", str(start_time))
        self.workers = [
            Proc("--worker", str(w), "--of", str(workers), *common, endpoint)
            for w in range(workers)
        ]
        self.engine: Proc | None = None

    def ready(self) -> None:
        for w in self.workers:
            w.ask("")  # the line each prints once its agents are registered

    def start_engine(self) -> Proc:
        self.engine = Proc("--engine", "--ttl", str(self.ttl), self.endpoint)
        return self.engine

    def stats(self, command: str = "stats") -> list[dict[str, object]]:
        return [w.ask(command) for w in self.workers]

    def arrivals(self) -> list[list[object]]:
        """Schedule events the agents' watches saw since the last call (after ``track``)."""
        return [a for s in self.stats() for a in s["arrivals"]]  # type: ignore[attr-defined]

    def pids(self) -> list[int]:
        return [w.popen.pid for w in self.workers]

    def stop(self) -> None:
        for w in self.workers:
            with contextlib.suppress(OSError):
                assert w.popen.stdin is not None
                w.popen.stdin.close()  # each ends at once, in parallel
        for w in self.workers:
            w.stop()
        if self.engine is not None:
            self.engine.popen.terminate()
            self.engine.stop()


async def count(registry: EtcdRegistry, prefix: str) -> int:
    items, _ = await registry.get_prefix(prefix)
    return len(items)


async def until_count(
    registry: EtcdRegistry, prefix: str, n: int, within: float, every: float = 2.0
) -> float:
    """Seconds until ``prefix`` holds at least ``n`` keys (SystemExit after ``within``)."""
    started = time.monotonic()
    while (have := await count(registry, prefix)) < n:
        if time.monotonic() - started > within:
            raise SystemExit(f"only {have}/{n} keys under {prefix} after {within:.0f} s")
        await asyncio.sleep(every)
    return time.monotonic() - started


def engine_passes(before: dict[str, object], after: dict[str, object]) -> tuple[int, int, float]:
    """Passes, full passes and seconds spent between two ``stats`` answers of the engine."""
    passes, full = (int(after[k]) - int(before[k]) for k in ("passes", "full"))  # type: ignore[call-overload]
    return passes, full, float(after["seconds"]) - float(before["seconds"])  # type: ignore[arg-type]


async def populate(
    registry: EtcdRegistry, cluster: Cluster, units: list[Unit], within: float = 900
) -> Proc:
    """Write ``units``, start the engine, wait until every unit is scheduled and its state
    published (read every few seconds); the engine process."""
    began = time.monotonic()
    await registry.batch([Put(KEYS.unit(u.name), codec.encode_unit(u)) for u in units])
    launched = sum(1 for u in units if "@." not in u.name)
    print(f"  {len(units)} units written in {time.monotonic() - began:.1f} s")
    began = time.monotonic()
    eng = cluster.start_engine()
    every = max(2.0, launched / 20_000)  # a read of every key costs etcd too
    await until_count(registry, KEYS.schedule, launched, within, every)
    scheduled = time.monotonic() - began
    took = await until_count(registry, KEYS.states, launched, within, every)
    print(
        f"  {launched} units scheduled {scheduled:.1f} s after the engine started, every "
        f"state published {took:.1f} s later (each read every {every:g} s)"
    )
    return eng


async def steady_state(
    registry: EtcdRegistry, cluster: Cluster, etcd_pid: int, seconds: float
) -> list[dict[str, object]]:
    """``seconds`` of nothing to do: etcd and engine CPU, the engine's passes, false machine
    losses, printed; the workers' stats after it."""
    assert cluster.engine is not None
    eng = cluster.engine
    _, revision = await registry.get_prefix(KEYS.version)
    losses0 = sum(int(s["losses"]) for s in cluster.stats())  # type: ignore[call-overload]
    deleted: list[str] = []

    async def watch_losses() -> None:
        async for events in registry.watch_prefix(KEYS.machines, revision + 1):
            deleted.extend(e.key for e in events if e.type is EventType.DELETE)

    watcher = asyncio.create_task(watch_losses())
    pids = cluster.pids()
    engine0 = eng.ask()
    e0, g0 = cpu_seconds(etcd_pid), cpu_seconds(eng.popen.pid)
    w0 = sum(map(cpu_seconds, pids))
    load0, t0 = load(), time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    e1, g1 = cpu_seconds(etcd_pid), cpu_seconds(eng.popen.pid)
    w1 = sum(map(cpu_seconds, pids))
    engine1 = eng.ask()
    stats = cluster.stats()
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    losses = sum(int(s["losses"]) for s in stats) - losses0  # type: ignore[call-overload]
    dead = sum(int(s["dead"]) for s in stats)  # type: ignore[call-overload]
    etcd_pct, eng_pct = (e1 - e0) / wall * 100, (g1 - g0) / wall * 100
    print(
        f"  steady state {wall:.0f} s (load {load0} -> {load()}): etcd {etcd_pct:.2f}% "
        f"+ engine {eng_pct:.2f}% = {etcd_pct + eng_pct:.2f}% of one core; simulated agents "
        f"{(w1 - w0) / wall * 100:.1f}% (all {len(pids)} processes)"
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
    return stats


async def settled(
    args: argparse.Namespace, etcd: EtcdServer, units: list[Unit], start_time: float = 0.0
) -> tuple[EtcdRegistry, Cluster, list[dict[str, object]]]:
    """The agents registered, ``units`` written and placed, the steady state measured
    (printed as it goes); the registry and the cluster (to stop), the workers' stats."""
    registry = EtcdRegistry([etcd.endpoint], timeout=30.0)
    await Store(registry, KEYS).ensure_schema()
    instances = sum(1 for u in units if "@" in u.name and "@." not in u.name)
    print(
        f"{args.agents} agents (lease TTL {args.ttl} s, refreshed every "
        f"{KeepAliveTiming.for_ttl(args.ttl).interval:g} s) in {args.workers} processes, "
        f"{args.units} units ({instances} template instances); load {load()}"
    )
    began = time.monotonic()
    cluster = Cluster(
        etcd.endpoint, agents=args.agents, workers=args.workers, ttl=args.ttl, start_time=start_time
    )
    try:
        cluster.ready()
        print(f"  {args.agents} agents registered in {time.monotonic() - began:.1f} s")
        await populate(registry, cluster, units)
        await asyncio.sleep(10)  # the engine's pass that confirms the placements
        stats = await steady_state(registry, cluster, etcd.pid or 0, args.duration)
    except BaseException:
        cluster.stop()
        await registry.close()
        raise
    return registry, cluster, stats


def arguments(
    description: str, agents: int, units: int, duration: float, workers: int
) -> argparse.ArgumentParser:
    """A scale benchmark's parser with the options every one has (the defaults given)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--agents", type=int, default=agents)
    parser.add_argument("--units", type=int, default=units)
    parser.add_argument("--duration", type=float, default=duration, help="steady-state seconds")
    parser.add_argument("--workers", type=int, default=workers, help="processes simulating agents")
    parser.add_argument("--ttl", type=int, default=30, help="agent lease TTL (s)")
    parser.add_argument("--fsync", action="store_true", help="let etcd fsync")
    return parser


def with_etcd(
    args: argparse.Namespace, body: Callable[[EtcdServer, str], Coroutine[None, None, None]]
) -> None:
    """Print the host, then run ``body(etcd, tmp)`` against a private etcd (fsync off unless
    ``--fsync``) whose data is in the temporary directory ``tmp``."""
    print(host_line())
    with tempfile.TemporaryDirectory(prefix="fleetd-scale-") as tmp:
        etcd = EtcdServer(Path(tmp) / "etcd", unsafe_no_fsync=not args.fsync)
        etcd.start()
        try:
            asyncio.run(body(etcd, tmp))
        finally:
            etcd.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", type=int)
    parser.add_argument("--of", type=int)
    parser.add_argument("--engine", action="store_true")
    parser.add_argument("--agents", type=int, default=0)
    parser.add_argument("--ttl", type=int, required=True)
    parser.add_argument("--start-time", type=float, default=0.0)
    parser.add_argument("--per-connection", type=int, default=AGENTS_PER_CONNECTION)
    parser.add_argument("endpoint")
    args = parser.parse_args()
    asyncio.run(engine(args) if args.engine else worker(args))


if __name__ == "__main__":
    main()
