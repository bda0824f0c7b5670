"""A Jepsen-style chaos run: 3 machines, a 3-member etcd, N units, a seeded nemesis.

    .venv/bin/python benchmarks/chaos.py [--seed S] [--duration 180] [--units 300]
        [--history FILE] [--ttl 10] [--sandbox NAME] [--keep]

Boots a sandbox (``--sandbox``, default ``$FLEETD_SANDBOX`` or ``chs``) of 3 machines
with an etcd member in each, starts ``--units`` units through the API (one in ten
``AtMostOnce``, one in ten in a ``Conflicts`` group of three, one in ten with a
health check) and waits until each is active on one machine.  Then, for
``--duration`` seconds, the nemesis (``fleetd/testing/chaos/nemesis.py``, planned
from ``--seed``) injects one fault after another: fleetd SIGKILLed (the leader's or
another's), the leader's fleetd SIGSTOPped and resumed, one machine partitioned,
every machine cut off from etcd, one etcd member cut off from its peers, a machine
powered off and booted, an etcd member killed and started; half-way through, a
client creates and destroys units through the API while the faults go on.

Meanwhile every machine's systemd is sampled every 100 ms over D-Bus (active units;
their ``MainPID`` every second) and every schedule change is watched on etcd.  After
the last fault is undone, the run waits until every launched unit is active exactly
once (at most ``SETTLE_WITHIN`` + 15 s), reads the registry and what systemd runs,
writes the history (JSON lines, ``fleetd/testing/chaos/history.py``) and checks it
(``invariants.py``).  It prints the faults injected and the violations by kind, and
exits 1 on any violation, naming the seed that replays the same plan.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import host_line, load, sandbox

from fleetd.errors import FleetError
from fleetd.registry.base import EventType
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Store
from fleetd.sandbox import Sandbox, SandboxSpec, faults
from fleetd.sandbox.seed import FLEETD_UNIT
from fleetd.sandbox.spec import API_PORT
from fleetd.testing.chaos import invariants, nemesis, workload
from fleetd.testing.chaos.client import Client
from fleetd.testing.chaos.history import History, Record, dump
from fleetd.testing.chaos.injector import Injector
from fleetd.testing.chaos.sampler import Sampler

EXTRA_WAIT = 15.0  # after SETTLE_WITHIN, to say how late a late run was


class Recorder:
    """The history, kept in memory for the checks and streamed to the file as it grows."""

    def __init__(self, out: IO[str]) -> None:
        self.records: list[Record] = []
        self._out = out
        self._lock = threading.Lock()

    def __call__(self, record: Record) -> None:
        with self._lock:
            self.records.append(record)
            dump([record], self._out)


class Run:
    def __init__(self, sb: Sandbox, args: argparse.Namespace, record: Recorder) -> None:
        self.sb, self.args, self.record = sb, args, record
        self.registry = EtcdRegistry(list(sb.etcd_endpoints), timeout=5.0)
        self.keys = Keys()
        self.store = Store(self.registry, self.keys)
        self.ids = {m.machine_id: m.name for m in sb.machines}
        self.units = workload.initial(args.units, args.seed)
        endpoints = [f"http://{m.ip}:{API_PORT}" for m in sb.machines]
        self.client = Client(endpoints, sb.token, record)
        self.sampler = Sampler(sb, workload.PATTERN, record)
        self.faults: collections.Counter[str] = collections.Counter()
        self.fleetd_restarts: dict[str, int] = {}  # by systemd, since each machine's boot
        self.loop = asyncio.get_running_loop()

    def leader(self) -> str | None:
        """The machine whose engine leads (called from the nemesis's thread)."""
        future = asyncio.run_coroutine_threadsafe(self.store.current_leader(), self.loop)
        try:
            found = future.result(timeout=6)
        except (FleetError, TimeoutError):
            return None
        return self.ids.get(found.machine) if found else None

    async def watch_schedule(self) -> None:
        _, revision = await self.registry.get_prefix(self.keys.prefix + "version")
        async for batch in self.registry.watch_prefix(self.keys.schedule, revision + 1):
            now = time.monotonic()
            for e in batch:
                machine, _, unit = e.key[len(self.keys.schedule) :].partition("/")
                if unit.startswith(workload.PREFIX):
                    put = e.type is EventType.PUT
                    self.record(
                        {
                            "kind": "schedule",
                            "t": now,
                            "unit": unit,
                            "machine": self.ids.get(machine, machine),
                            "op": "put" if put else "delete",
                        }
                    )

    async def launched(self) -> set[str] | None:
        try:
            units = await self.store.list_units()
        except FleetError:
            return None
        return {
            u.name
            for u in units
            if u.name.startswith(workload.PREFIX) and u.desired.value == "launched"
        }

    async def converged(self, within: float) -> float | None:
        """Seconds until every launched unit is active exactly once (None: not in time)."""
        began = time.monotonic()
        while time.monotonic() - began < within:
            expected = await self.launched()
            latest = dict(self.sampler.latest)
            seen = collections.Counter(u for units in latest.values() for u in units)
            if (
                expected is not None
                and set(seen) == expected
                and max(seen.values(), default=1) == 1
            ):
                return time.monotonic() - began
            await asyncio.sleep(0.5)
        return None

    async def nemesis(self, until: float) -> None:
        machines = tuple(self.ids.values())
        steps = nemesis.plan(
            self.args.seed, self.args.duration, self.args.ttl, machines, self.args.long_pauses
        )
        injector = Injector(self.sb, self.leader)
        for number, step in enumerate(steps):
            if time.monotonic() + step.gap >= until:
                break
            await asyncio.sleep(step.gap)
            began = time.monotonic()  # a fault's window opens when its injection begins
            injected = await asyncio.to_thread(injector.inject, step)
            self.faults[step.kind.value] += 1
            start = {
                "kind": "fault",
                "id": number,
                "fault": step.kind.value,
                "machines": list(injected.machines),
                "target": step.target,
                "hold": step.hold,
            }
            self.record({**start, "t": began, "phase": "start", "details": injected.details})
            print(
                f"  {began - until + self.args.duration:6.1f}s {step.kind.value} "
                f"{','.join(injected.machines)} for {step.hold:.1f}s "
                + str(injected.details.get("error", "")),
                flush=True,
            )
            await asyncio.sleep(step.hold)
            try:
                await asyncio.to_thread(injector.undo, injected)
            except FleetError as exc:
                injected.details["undo"] = str(exc)
            self.record(
                {**start, "t": time.monotonic(), "phase": "end", "details": injected.details}
            )

    async def burst(self, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        new, gone = workload.burst(
            self.args.seed, self.units, self.args.units // 6, self.args.units // 10
        )
        print(f"  burst: {len(new)} creates, {len(gone)} destroys", flush=True)
        await self.client.run(new, gone, width=4)

    async def final_views(self) -> None:
        try:
            units = await self.store.list_units()
        except FleetError as exc:
            print(f"cannot read the registry at the end: {exc}")
            return
        self.record(
            {
                "kind": "registry",
                "t": time.monotonic(),
                "units": {
                    u.name: {"hash": u.hash, "desired": u.desired.value}
                    for u in units
                    if u.name.startswith(workload.PREFIX)
                },
            }
        )
        for m in self.sb.machines:
            proc = await asyncio.to_thread(
                self.sb.exec,
                m.name,
                "systemctl",
                "show",
                "--state=active",
                "-p",
                "Id,Description",
                workload.PATTERN,
            )
            found = {}
            for block in proc.stdout.split("\n\n"):
                props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
                if props.get("Id"):
                    found[props["Id"]] = props.get("Description", "")
            self.record(
                {"kind": "systemd", "t": time.monotonic(), "machine": m.name, "descriptions": found}
            )
            proc = await asyncio.to_thread(
                self.sb.exec, m.name, "systemctl", "show", "-p", "NRestarts", "--value", FLEETD_UNIT
            )
            self.fleetd_restarts[m.name] = int(proc.stdout.strip() or 0)


async def run(sb: Sandbox, args: argparse.Namespace, record: Recorder) -> int:
    r = Run(sb, args, record)
    record(
        {
            "kind": "meta",
            "t": time.monotonic(),
            "seed": args.seed,
            "duration": args.duration,
            "units": args.units,
            "ttl": args.ttl,
            "machines": {m.name: m.machine_id for m in sb.machines},
            "at_most_once": sorted(u.name for u in r.units if u.at_most_once),
            "host": host_line(),
        }
    )
    watch = asyncio.create_task(r.watch_schedule(), name="chaos-schedule-watch")
    r.sampler.start()
    try:
        began = time.monotonic()
        await r.client.run(r.units, [], width=16)
        took = await r.converged(300)
        if took is None:
            print("the units never all became active exactly once before the faults")
            return 2
        print(
            f"{args.units} units active exactly once in {time.monotonic() - began:.1f}s; "
            f"load {load()}; faults for {args.duration:g}s (seed {args.seed}):",
            flush=True,
        )
        start = time.monotonic()
        until = start + args.duration
        burst = asyncio.create_task(r.burst(start + args.duration / 2), name="chaos-burst")
        await r.nemesis(until)
        await burst
        await asyncio.to_thread(faults.restore, sb, 120.0, False)
        healed = time.monotonic()
        took = await r.converged(invariants.SETTLE_WITHIN + EXTRA_WAIT)
        await r.final_views()
    finally:
        r.sampler.stop()
        r.sampler.close_off_machines()
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await r.client.close()
        await r.registry.close()
    record(
        {
            "kind": "settle",
            "t": time.monotonic(),
            "healed": healed,
            "converged_in": None if took is None else round(took, 2),
            "samples": r.sampler.samples,
        }
    )
    violations = invariants.check(History(record.records))
    for v in violations:
        record(v.record())
    print(
        f"faults injected ({sum(r.faults.values())}): "
        + ", ".join(f"{k} {n}" for k, n in sorted(r.faults.items()))
    )
    settled = "never" if took is None else f"{took:.1f}s"
    print(
        f"after the last fault: every unit active exactly once in {settled}; "
        f"samples per machine {r.sampler.samples}; load {load()}"
    )
    print(f"fleetd restarted by systemd since each machine's last boot: {r.fleetd_restarts}")
    by_kind = collections.Counter(v.invariant for v in violations)
    print(
        f"violations ({len(violations)}): "
        + (", ".join(f"{k} {n}" for k, n in sorted(by_kind.items())) or "none")
    )
    for v in violations[:20]:
        print(f"  {v.invariant} {v.unit}: {v.details}")
    if violations:
        print(
            f"replay: benchmarks/chaos.py --seed {args.seed} --duration {args.duration:g} "
            f"--units {args.units} --ttl {args.ttl:g}"
            + (" --long-pauses" if args.long_pauses else "")
        )
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seed", type=int, default=None, help="the nemesis's seed (default: random)"
    )
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of faults")
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--ttl", type=float, default=10.0, help="the agents' TTL, seconds")
    parser.add_argument(
        "--history", type=Path, default=None, help="JSON lines (default: build/chaos-SEED.jsonl)"
    )
    parser.add_argument("--sandbox", default=os.environ.get("FLEETD_SANDBOX") or "chs")
    parser.add_argument(
        "--long-pauses",
        action="store_true",
        help="pause the leader's fleetd for up to 1.5 TTL (default: a quarter TTL at most)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up afterwards")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1_000_000)
    history = args.history or Path("build") / f"chaos-{args.seed}.jsonl"
    history.parent.mkdir(parents=True, exist_ok=True)
    print(host_line())
    spec = SandboxSpec(machines=3, etcd_members=3, agent_ttl=args.ttl)
    with history.open("w") as out, sandbox(args.sandbox, spec, keep=args.keep) as sb:
        code = asyncio.run(run(sb, args, Recorder(out)))
    print(f"history: {history}")
    print(json.dumps({"seed": args.seed, "exit": code}))
    raise SystemExit(code)


if __name__ == "__main__":
    main()
