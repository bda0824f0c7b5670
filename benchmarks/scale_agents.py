"""1,000 simulated agents and 20,000 units against one etcd: steady-state cost, per-change cost.

    .venv/bin/python benchmarks/scale_agents.py [--agents 1000] [--units 20000]
        [--duration 300] [--workers 4] [--changes 20]

Starts a private etcd, one engine process and ``--workers`` processes that
simulate the agents between them (benchmarks/simagents.py: each agent keeps
its lease (``--ttl``, default 30 s as fleetd's ``agent_ttl``) on
``Presence``'s schedule, watches its own ``schedule/<id>/`` prefix and
publishes a state for every unit scheduled to it; no systemd).

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
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import summary
from simagents import (
    KEYS,
    arguments,
    engine_passes,
    machine_id,
    settled,
    unit_of,
    with_etcd,
)

from fleetd.etcd_server import EtcdServer
from fleetd.registry import codec


async def coordinate(args: argparse.Namespace, etcd: EtcdServer) -> None:
    units = [unit_of(f"s{i}.service") for i in range(args.units)]
    registry, cluster, stats = await settled(args, etcd, units)
    assert cluster.engine is not None
    eng = cluster.engine
    try:
        # one scheduling change at a time
        events_before = sum(int(s["events"]) for s in stats)  # type: ignore[call-overload]
        cluster.stats("track")
        engine0 = eng.ask()
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
                seen += cluster.arrivals()
            arrived = next(float(a[0]) for a in seen if str(a[2]).endswith(f"/{target}/{name}"))  # type: ignore[arg-type]
            latencies.append(arrived - sent)
            await asyncio.sleep(0.5)  # anything else this move caused
            seen += cluster.arrivals()
            watches.append(len({str(a[2]).split("/")[-2] for a in seen}))
        stats = cluster.stats()
        delivered = sum(int(s["events"]) for s in stats) - events_before  # type: ignore[call-overload]
        print(
            f"  {args.changes} moves of one unit: {delivered} events delivered to all "
            f"{args.agents} agent watches together ({delivered / args.changes:.1f} per move; "
            f"O(1) = 2: a delete for the old machine, a put for the new one); watches that "
            f"saw any event per move: {min(watches)}-{max(watches)} of {args.agents}"
        )
        print(f"  unit write -> new machine's watch has its entry: {summary(latencies)}")
        passes, full, spent = engine_passes(engine0, eng.ask())
        print(
            f"  engine passes for the moves: {passes} ({full} full), "
            f"{spent / max(1, passes) * 1000:.1f} ms each on average"
        )
    finally:
        cluster.stop()
        await registry.close()


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], 1000, 20_000, 300.0, 4)
    parser.add_argument("--changes", type=int, default=20, help="single-unit moves to time")
    args = parser.parse_args()
    with_etcd(args, lambda etcd, _: coordinate(args, etcd))


if __name__ == "__main__":
    main()
