"""5,000 simulated agents, 100,000 units, one etcd: steady state, false losses, a big rollout.

    .venv/bin/python benchmarks/scale_rollout.py [--agents 5000] [--units 100000]
        [--instances 10000] [--max-parallel 100] [--min-healthy-time 1]
        [--start-time 0.25] [--duration 120] [--workers 8] [--ttl 30]

Starts a private etcd (fsync off unless ``--fsync``), one engine process and
``--workers`` processes simulating the agents (benchmarks/simagents.py: each
keeps its lease on ``Presence``'s schedule, watches its own
``schedule/<id>/`` prefix and publishes every unit it is given, with its hash,
active and healthy ``--start-time`` seconds later: systemd's part,
simulated).  The units: ``--instances`` launched instances of
``roll@.service``, the rest plain units.  After every unit is scheduled and
its state published:

* steady state for ``--duration`` seconds: etcd and engine CPU as a share
  of one core, the engine's passes, false machine losses (``machines/`` keys
  deleted or leases lost while their agents ran; target 0);
* ``fleetctl --driver etcd update --max-parallel P --min-healthy-time T`` of a
  new version of ``roll@.service``, timed from launching fleetctl to the
  rollout record saying ``succeeded`` (on a watch), against its floor:
  ceil(instances / P) x (start time + T), what the simulated agents allow;
  then every instance's published state is checked to carry the new hash.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FLEETCTL, cpu_seconds, load
from simagents import (
    KEYS,
    Cluster,
    arguments,
    engine_passes,
    settled,
    unit_of,
    with_etcd,
)

from fleetd.etcd_server import EtcdServer
from fleetd.model import DesiredState, Unit
from fleetd.registry.etcd import EtcdRegistry
from fleetd.unitfile import UnitFile

TEMPLATE = "roll@.service"
ROLL = "[Unit]\nDescription=roll %i {version}\n\n[Service]\nExecStart=/bin/sleep infinity\n"


def units(n: int, instances: int) -> list[Unit]:
    """The plain units, the template (submitted) and its launched instances."""
    text = ROLL.format(version="v1")
    template = replace(unit_of(TEMPLATE, text=text), desired=DesiredState.INACTIVE)
    found = [unit_of(f"s{i}.service") for i in range(n - instances)]
    found.append(template)
    found += [replace(template, name=f"roll@{i}.service", desired=DesiredState.LAUNCHED)
              for i in range(instances)]  # fmt: skip
    return found


async def rollout(
    args: argparse.Namespace, registry: EtcdRegistry, cluster: Cluster, etcd: EtcdServer, tmp: str
) -> None:
    assert cluster.engine is not None
    batches = -(-args.instances // args.max_parallel)
    floor = batches * (args.start_time + args.min_healthy_time)
    text = ROLL.format(version="v2")
    new_hash = UnitFile.from_text(text).hash
    await asyncio.to_thread(Path(tmp, TEMPLATE).write_text, text)
    _, revision = await registry.get_prefix(KEYS.version)
    succeeded: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def watch_record() -> None:
        async for events in registry.watch_prefix(KEYS.rollout(TEMPLATE), revision + 1):
            for e in events:
                if b'"phase":"succeeded"' in e.value and not succeeded.done():
                    succeeded.set_result(time.monotonic())
                elif b'"phase":"failed"' in e.value and not succeeded.done():
                    succeeded.set_exception(SystemExit(f"the rollout failed: {e.value[:500]!r}"))

    watcher = asyncio.create_task(watch_record())
    pids = {"etcd": etcd.pid or 0, "engine": cluster.engine.popen.pid}
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    w0 = sum(map(cpu_seconds, cluster.pids()))
    engine0 = cluster.engine.ask()
    load0 = load()
    command = [
        FLEETCTL, "--driver", "etcd", "--etcd-endpoints", etcd.endpoint, "update",
        "--max-parallel", str(args.max_parallel),
        "--min-healthy-time", f"{args.min_healthy_time * 1000:g}ms",
        "--healthy-deadline", "10m", TEMPLATE,
    ]  # fmt: skip
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        async with asyncio.timeout(max(600.0, 5 * floor)):
            done = await succeeded
            _, err = await proc.communicate()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    exited = time.monotonic()
    if proc.returncode != 0:
        raise SystemExit(f"fleetctl update failed: {err.decode().strip()[-2000:]}")
    used = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
    agents = sum(map(cpu_seconds, cluster.pids())) - w0
    engine1 = cluster.engine.ask()
    passes, full, spent = engine_passes(engine0, engine1)
    why = engine1["why"] if full else "none"
    took = done - started
    print(
        f"  rolling update of {args.instances} instances, --max-parallel {args.max_parallel} "
        f"--min-healthy-time {args.min_healthy_time:g}s (load {load0} -> {load()}):"
    )
    print(
        f"    command -> rollout succeeded {took:.1f} s = {took / floor:.2f} x the floor "
        f"{floor:.1f} s ({batches} x ({args.start_time:g} s start + "
        f"{args.min_healthy_time:g} s)); fleetctl exited at {exited - started:.1f} s"
    )
    print(
        f"    CPU during it: etcd {used['etcd']:.1f} s, engine {used['engine']:.1f} s "
        f"({passes} passes, {full} full, {spent:.1f} s in passes; the last full one: "
        f"{why}), simulated agents {agents:.1f} s"
    )
    items, _ = await registry.get_prefix(KEYS.states)
    fresh = sum(1 for kv in items if "/roll@" in kv.key and new_hash in kv.value.decode())
    print(f"    instances whose published state carries the new hash: {fresh}/{args.instances}")
    if fresh != args.instances:
        raise SystemExit("not every instance runs the new version")


async def coordinate(args: argparse.Namespace, etcd: EtcdServer, tmp: str) -> None:
    found = units(args.units, args.instances)
    registry, cluster, _ = await settled(args, etcd, found, args.start_time)
    try:
        await rollout(args, registry, cluster, etcd, tmp)
        stats = cluster.stats()
        lost = sum(int(s["losses"]) for s in stats)  # type: ignore[call-overload]
        print(f"  leases lost in the whole run: {lost}; etcd RSS {rss(etcd.pid or 0)} MiB")
    finally:
        cluster.stop()
        await registry.close()


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], 5000, 100_000, 120.0, 8)
    parser.add_argument("--instances", type=int, default=10_000, help="of the rolled template")
    parser.add_argument("--max-parallel", type=int, default=100)
    parser.add_argument("--min-healthy-time", type=float, default=1.0, help="seconds")
    parser.add_argument("--start-time", type=float, default=0.25, help="simulated start (s)")
    args = parser.parse_args()
    with_etcd(args, lambda etcd, tmp: coordinate(args, etcd, tmp))


if __name__ == "__main__":
    main()
