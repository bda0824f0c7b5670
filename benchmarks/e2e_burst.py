"""End-to-end burst on a 3-machine sandbox: ``fleetctl start`` of 1,000 template instances.

    .venv/bin/python benchmarks/e2e_burst.py [--units 1000] [--machines 3] [--sandbox bnch]

Boots a sandbox (real systemd in every machine, fleetd with agent, engine
and API), submits the template ``burst@.service`` (not timed), then runs
``fleetctl --endpoint <m1's API> start --no-block burst@1.service ...`` and
counts, inside every machine, the active ``burst@*`` units until all N run.
Printed:

* the time from launching fleetctl to the last unit entering ``active``
  (systemd's own ActiveEnterTimestampMonotonic in the machines) - target <= 2.5 s;
* where it went, from a watch on the registry: fleetctl start-up (to its first
  unit write), API writes (first to last ``units/``), engine (last
  ``schedule/``), agents and systemd (last state published ``active``);
* with ``--baseline``: plain ``systemctl start`` of N/3 units in each machine at
  once, systemd's own floor on this host.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ActiveSampler,
    CpuMeter,
    Timeline,
    active_since,
    cpu_line,
    fleetctl,
    host_line,
    leader_name,
    load,
    sandbox,
    sh,
)

from fleetd.registry.base import EventType
from fleetd.registry.etcd import EtcdRegistry
from fleetd.sandbox import Sandbox, SandboxSpec

TEMPLATE = "[Unit]\nDescription=burst %i\n\n[Service]\nExecStart=/bin/sleep infinity\n"
PREFIX = "/fleet/"

BASELINE_SETUP = """
printf '[Service]\\nExecStart=/bin/sleep infinity\\n' > /run/systemd/system/raw@.service
systemctl daemon-reload
"""
# ``systemctl start`` waits for its jobs through D-Bus signals: polling here would load
# the systemd it measures.
BASELINE = """
systemctl start $(seq -f 'raw@%g.service' 1 "$1")
systemctl show -p ActiveEnterTimestampMonotonic --value 'raw@*' | sort -n | tail -1
"""
BASELINE_CLEANUP = """
systemctl stop 'raw@*'
rm /run/systemd/system/raw@.service
systemctl daemon-reload
"""


def quartiles(times: Iterable[float], origin: float) -> str:
    """``first/25%/50%/75%/last`` seconds after ``origin``."""
    ordered = sorted(t - origin for t in times)
    last = len(ordered) - 1
    marks = [ordered[round(q * last)] for q in (0, 0.25, 0.5, 0.75, 1)]
    return "/".join(f"{m:.2f}" for m in marks) + " s (first/25%/50%/75%/last)"


def baseline(sb: Sandbox, per_machine: int) -> float:
    """Seconds until systemd alone has ``per_machine`` fresh units active in every machine."""
    names = [m.name for m in sb.machines]
    script = BASELINE.replace("$1", str(per_machine))
    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lambda m: sh(sb, m, BASELINE_SETUP), names))
        started = time.monotonic()
        ends = list(pool.map(lambda m: sh(sb, m, script), names))
        list(pool.map(lambda m: sh(sb, m, BASELINE_CLEANUP), names))
    return max(int(e.strip()) / 1e6 for e in ends) - started


async def burst(sb: Sandbox, n: int, within: float, tmp: str) -> None:
    machines = [m.name for m in sb.machines]
    registry = EtcdRegistry(sb.etcd_endpoints, timeout=10.0)
    submit = fleetctl(sb, "submit", "burst@.service", cwd=tmp)
    _, err = submit.communicate(timeout=120)
    if submit.returncode != 0:
        raise SystemExit(f"fleetctl submit failed: {err.strip()}")
    timeline = Timeline(registry, PREFIX)
    await timeline.start()
    names = [f"burst@{i}.service" for i in range(1, n + 1)]
    print(f"load before the burst: {load()}")
    sampler = ActiveSampler(sb, "burst@*", interval=0.25)
    meter = CpuMeter(sb)
    meter.start()
    started = time.monotonic()
    proc = fleetctl(sb, "start", "--no-block", *names, cwd=tmp)
    reaped = asyncio.get_running_loop().run_in_executor(None, os.wait4, proc.pid, 0)
    exited: float | None = None
    counts: dict[str, int] = {}
    deadline = started + within
    try:
        while True:
            if exited is None and reaped.done():
                exited = time.monotonic()
                _, status, usage = reaped.result()
                if status != 0:
                    raise SystemExit(f"fleetctl start failed: {proc.stderr.read()[-2000:]}")
            found = sampler.samples[-1][1] if sampler.samples else {}
            counts = {m: len(units) for m, units in found.items()}
            if sum(counts.values()) >= n:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {sum(counts.values())}/{n} active after {within} s")
            await asyncio.sleep(0.05)
    finally:
        sampler.stop()
    seen = time.monotonic()
    used = meter.stop()
    since = {}
    with ThreadPoolExecutor(len(machines)) as pool:
        for part in pool.map(lambda m: active_since(sb, m, "burst@*"), machines):
            since.update(part)
    if exited is None:
        _, status, usage = await reaped
        exited = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status)
    leader = await leader_name(registry, sb)
    await asyncio.sleep(0.5)  # the last state events
    await timeline.stop()
    await registry.close()

    last_active = max(since.values())
    units = timeline.times("units/burst@")
    schedule = timeline.times("schedule/")
    states = timeline.times("states/", contains=b'"active":"active"')
    first_unit = min(units.values())
    spread = ", ".join(f"{m}: {c}" for m, c in counts.items())
    print(f"{n} units on {len(machines)} machines ({spread})")
    print(
        f"  fleetctl start -> all {len(since)} active in systemd: "
        f"{last_active - started:.2f} s (target <= 2.5 s); seen by polling at "
        f"{seen - started:.2f} s; fleetctl exited at {exited - started:.2f} s"
    )
    print(
        f"  breakdown (from fleetctl launch): first unit write {first_unit - started:.2f} s "
        f"(fleetctl start-up), last unit write {max(units.values()) - started:.2f} s "
        f"({len(units)} writes), schedule writes {quartiles(schedule.values(), started)}, "
        f"last state published active {max(states.values()) - started:.2f} s, "
        f"last ActiveEnterTimestamp {last_active - started:.2f} s"
    )
    print(
        f"  units active in systemd {quartiles(since.values(), started)}\n"
        f"  from the first unit write: all active {last_active - first_unit:.2f} s; "
        f"first unit active in systemd {min(since.values()) - started:.2f} s after launch"
    )
    print(
        f"  CPU seconds until all were active: fleetctl {usage.ru_utime + usage.ru_stime:.2f}, "
        f"{cpu_line(used)}; engine leader on {leader}"
    )
    events = sum(1 for e in timeline.events if e[1] is EventType.PUT)
    print(f"  registry events during the burst: {len(timeline.events)} ({events} puts)")
    print(f"load after the burst: {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--machines", type=int, default=3)
    parser.add_argument("--sandbox", default="bnch", help="sandbox name (at most 4 characters)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--baseline", action="store_true", help="also time systemd alone")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up afterwards")
    args = parser.parse_args()
    print(host_line())
    with sandbox(args.sandbox, SandboxSpec(machines=args.machines), keep=args.keep) as sb:
        if args.baseline:
            per = -(-args.units // args.machines)
            took = baseline(sb, per)
            print(f"baseline: systemd alone, {per} units in each machine at once: {took:.2f} s")
        with tempfile.TemporaryDirectory(prefix="fleetd-burst-") as tmp:
            Path(tmp, "burst@.service").write_text(TEMPLATE)
            asyncio.run(burst(sb, args.units, args.timeout, tmp))


if __name__ == "__main__":
    main()
