"""Rolling update on a 3-machine sandbox: 100 template instances, 10 at a time.

    .venv/bin/python benchmarks/rollout.py [--units 100] [--max-parallel 10]
        [--min-healthy-time 1] [--sandbox NAME]

Boots a sandbox (``--sandbox``, default ``$FLEETD_SANDBOX`` or ``bnch``), starts N
instances of ``roll@.service`` (not timed), then times ``fleetctl update
--max-parallel P --min-healthy-time T`` of a new version of the template, from
launching fleetctl to the rollout record saying ``succeeded`` (seen on a watch of
the registry; fleetctl's own exit, which polls, is printed too).  Every instance
is active in its machine's systemd on the new file at the end (checked).

The floor: ceil(N/P) batches, each at least systemd's restart of a batch of
changed units plus T.  The restart is measured first in the same machines
(``daemon-reload`` after a changed file, then ``systemctl restart`` of the batch's
share of units in every machine at once).  Target: at most 1.2 x the floor.
Per batch: when its instances got the new file, were first seen healthy, and done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    CpuMeter,
    Timeline,
    cpu_line,
    fleetctl,
    host_line,
    leader_name,
    load,
    sandbox,
    sh,
)

from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.store import Store
from fleetd.rollouts.record import Rollout
from fleetd.sandbox import Sandbox, SandboxSpec

PREFIX = "/fleet/"
TEMPLATE = "[Unit]\nDescription=roll %i {version}\n\n[Service]\nExecStart=/bin/sleep infinity\n"

BASELINE_SETUP = """
printf '[Unit]\\nDescription=raw v1\\n[Service]\\nExecStart=/bin/sleep infinity\\n' \
  > /run/systemd/system/raw@.service
systemctl daemon-reload
systemctl start $(seq -f 'raw@%g.service' 1 "$1")
"""
# What the agent makes systemd do for a unit whose file changed: a daemon-reload that
# sees the new file, and a restart (stop, start); timed inside the machine.
BASELINE = """
sed -i 's/raw v1/raw v2/' /run/systemd/system/raw@.service
t0=$(cut -d' ' -f1 /proc/uptime)
systemctl daemon-reload
systemctl restart $(seq -f 'raw@%g.service' 1 "$1")
t1=$(cut -d' ' -f1 /proc/uptime)
echo "$t0 $t1"
"""
UNDO = "sed -i 's/raw v2/raw v1/' /run/systemd/system/raw@.service"
BASELINE_CLEANUP = """
systemctl stop 'raw@*'
rm /run/systemd/system/raw@.service
systemctl daemon-reload
"""


def run(sb: Sandbox, *args: str, cwd: str, timeout: float = 600) -> str:
    proc = fleetctl(sb, *args, cwd=cwd)
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"fleetctl {' '.join(args[:2])} failed: {err.strip()[-2000:]}")
    return out


def restart_baseline(sb: Sandbox, batch: int) -> float:
    """Seconds systemd needs to reload and restart ``batch`` changed units spread over
    the machines (each restarting its share at once); the slowest machine counts."""
    names = [m.name for m in sb.machines]
    share = -(-batch // len(names))
    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lambda m: sh(sb, m, BASELINE_SETUP.replace("$1", str(share))), names))
        spans = []
        for _ in range(3):  # the median of three tries
            outs = list(pool.map(lambda m: sh(sb, m, BASELINE.replace("$1", str(share))), names))
            spans.append(max(float(o.split()[1]) - float(o.split()[0]) for o in outs))
            list(pool.map(lambda m: sh(sb, m, UNDO), names))
        list(pool.map(lambda m: sh(sb, m, BASELINE_CLEANUP), names))
    return sorted(spans)[1]


def on_new_file(sb: Sandbox, names: list[str], version: str) -> int:
    """How many of ``names`` systemd runs with the ``version`` file, over every machine."""
    script = "systemctl show -p Id,ActiveState,Description 'roll@*'"
    count = 0
    for machine in (m.name for m in sb.machines):
        for block in sh(sb, machine, script).strip().split("\n\n"):
            props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            if (
                props.get("Id") in names
                and props.get("ActiveState") == "active"
                and props.get("Description", "").endswith(version)
            ):
                count += 1
    return count


def prepare(sb: Sandbox, names: list[str], parallel: int, healthy: float, tmp: str) -> float:
    """Start the instances on v1, write v2 of the template; the floor in seconds."""
    Path(tmp, "roll@.service").write_text(TEMPLATE.format(version="v1"))
    run(sb, "submit", "roll@.service", cwd=tmp)
    run(sb, "start", "--block-attempts", "600", *names, cwd=tmp)
    Path(tmp, "roll@.service").write_text(TEMPLATE.format(version="v2"))
    batches = -(-len(names) // parallel)
    restart = restart_baseline(sb, parallel)
    floor = batches * (restart + healthy)
    print(
        f"systemd alone reloads and restarts a batch of {parallel} changed units in "
        f"{restart * 1000:.0f} ms; floor {batches} x ({restart:.2f} + {healthy:g}) s = "
        f"{floor:.2f} s"
    )
    return floor


async def rollout(
    sb: Sandbox, names: list[str], parallel: int, healthy: float, floor: float, tmp: str
) -> None:
    n = len(names)
    registry = EtcdRegistry(sb.etcd_endpoints, timeout=10.0)
    store = Store(registry)
    timeline = Timeline(registry, PREFIX)
    await timeline.start()
    meter = CpuMeter(sb)
    meter.start()
    print(f"load before: {load()}")
    started = time.monotonic()
    wall_started = time.time()
    proc = fleetctl(
        sb, "update", "--max-parallel", str(parallel), "--min-healthy-time", f"{healthy:g}s",
        "roll@.service", cwd=tmp,
    )  # fmt: skip
    out, err = await asyncio.get_running_loop().run_in_executor(None, proc.communicate)
    exited = time.monotonic()
    used = meter.stop()
    if proc.returncode != 0:
        raise SystemExit(f"fleetctl update failed: {err.strip()[-2000:]}")
    done_at = None
    for t, _, key, value, _ in timeline.events:
        if key == PREFIX + "rollouts/roll@.service" and b'"phase":"succeeded"' in value:
            done_at = t
            break
    found = await store.get_rollout("roll@.service")
    leader = await leader_name(registry, sb)
    await timeline.stop()
    await registry.close()
    if done_at is None or found is None:
        raise SystemExit("no succeeded rollout record seen")
    record: Rollout = found[0]
    took = done_at - started
    ratio = took / floor
    print(f"{n} instances on {len(sb.machines)} machines, --max-parallel {parallel}, "
          f"--min-healthy-time {healthy:g}s")  # fmt: skip
    print(
        f"  command -> rollout succeeded: {took:.2f} s = {ratio:.2f} x the floor "
        f"{floor:.2f} s (target <= 1.2 x); fleetctl exited at {exited - started:.2f} s"
    )
    _batches(record, wall_started, parallel, healthy)
    print(f"  CPU seconds during the rollout: {cpu_line(used)}; engine leader on {leader}")
    updated = on_new_file(sb, names, "v2")
    print(f"  active in systemd on the new file: {updated}/{n}")
    if updated != n:
        raise SystemExit("not every instance runs the new file")
    print(f"  fleetctl: {out.strip().splitlines()[-1]}")
    print(f"load after: {load()}")
    print(
        json.dumps({"seconds": round(took, 3), "floor": round(floor, 3), "ratio": round(ratio, 3)})
    )


def _batches(record: Rollout, origin: float, parallel: int, healthy: float) -> None:
    """The targets in groups of ``parallel`` by the time they got the new file (the driver
    gives a target its file as soon as one in flight is done: a rolling window, not
    strict batches): when the group got it, was all seen healthy, and was done."""
    targets = sorted(record.targets, key=lambda t: (t.started, t.name))
    overheads = []
    for i in range(0, len(targets), parallel):
        batch = targets[i : i + parallel]
        given = min(t.started for t in batch)
        done = max(t.since for t in batch)
        healthy_at = done - healthy
        overheads.append(done - given - healthy)
        print(
            f"  group {i // parallel + 1:2}: new file at {given - origin:6.2f} s, "
            f"all healthy {healthy_at - given:5.2f} s later, done at {done - origin:6.2f} s"
        )
    print(
        f"  per group beyond min-healthy-time: mean {sum(overheads) / len(overheads):.2f} s, "
        f"max {max(overheads):.2f} s (restart, health seen, the next batch given its file)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--max-parallel", type=int, default=10)
    parser.add_argument("--min-healthy-time", type=float, default=1.0)
    parser.add_argument("--machines", type=int, default=3)
    parser.add_argument(
        "--sandbox",
        default=os.environ.get("FLEETD_SANDBOX") or "bnch",
        help="sandbox name (at most 4 characters)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up afterwards")
    args = parser.parse_args()
    print(host_line())
    with (
        sandbox(args.sandbox, SandboxSpec(machines=args.machines), keep=args.keep) as sb,
        tempfile.TemporaryDirectory(prefix="fleetd-rollout-") as tmp,
    ):
        names = [f"roll@{i}.service" for i in range(1, args.units + 1)]
        parallel, healthy = args.max_parallel, args.min_healthy_time
        floor = prepare(sb, names, parallel, healthy, tmp)
        asyncio.run(rollout(sb, names, parallel, healthy, floor, tmp))


if __name__ == "__main__":
    main()
