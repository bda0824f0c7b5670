"""Agent benchmark on one real sandbox machine: start N units, then idle CPU.

    .venv/bin/python benchmarks/agent_start.py [--units 500] [--steady 60] [--sandbox ab]

Boots a 1-machine sandbox (named ``--sandbox``, without fleetd), runs the
agent alone in it (``python -m fleetd.agent``), writes N unit records, then
all N schedule entries at once (as the engine would) and reports:

* the time from the schedule write to every unit's published state being
  ``active`` (watched on etcd from the host), and systemd's own count;
* the agent's CPU over ``--steady`` seconds with the N units running and
  nothing changing (utime+stime of its process, as a share of one core).

Targets (benchmarks/README.md): 500 units active in <= 3 s; steady state < 2%.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from fleetd.model import DesiredState, ScheduleEntry, Unit
from fleetd.registry import codec
from fleetd.registry.base import Put
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Store
from fleetd.sandbox.cluster import Sandbox, teardown
from fleetd.sandbox.spec import SandboxSpec
from fleetd.unitfile import UnitFile

AGENT = "fleet-agent-bench.service"
KEYS = Keys("/bench/")
TEXT = "[Unit]\nDescription=bench unit %i\n\n[Service]\nExecStart=/bin/sleep 1000000\n"


def sh(sb: Sandbox, *cmd: str) -> str:
    proc = sb.exec("m1", *cmd, timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def start_agent(sb: Sandbox, profile: str = "") -> None:
    wrap = ["-m", "cProfile", "-o", profile] if profile else []
    sh(
        sb,
        "systemd-run",
        f"--unit={AGENT}",
        "--property=After=dbus.service",
        f"--setenv=FLEETD_ETCD_KEY_PREFIX={KEYS.prefix}",
        "--setenv=FLEETD_UNITS_DIRECTORY=/run/fleet-bench/units",
        sys.executable,
        *wrap,
        "-m",
        "fleetd.agent",
        "--lease-file",
        "/run/fleet-bench/lease",
    )


BASELINE = """
printf '[Service]\\nExecStart=/bin/sleep 1000000\\n' > /run/systemd/system/raw@.service
systemctl daemon-reload
start=$(date +%s%N)
systemctl start $(seq -f 'raw@%g.service' 1 "$1")
end=$(date +%s%N)
systemctl stop 'raw@*'
rm /run/systemd/system/raw@.service
systemctl daemon-reload
echo $(( (end - start) / 1000000 ))
"""


def systemd_baseline(sb: Sandbox, n: int) -> float:
    """Seconds ``systemctl start`` needs for n fresh units in this machine (no agent)."""
    return int(sh(sb, "sh", "-c", BASELINE, "baseline", str(n))) / 1000


def agent_cpu_seconds(sb: Sandbox) -> float:
    pid = sh(sb, "systemctl", "show", "-p", "MainPID", "--value", AGENT)
    fields = sh(sb, "cat", f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


async def until(probe: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await probe():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {what}")
        await asyncio.sleep(0.05)


async def bench(sb: Sandbox, n: int, steady: float, profile: str) -> None:
    machine = sb.machine("m1").machine_id
    registry = EtcdRegistry(sb.etcd_endpoints, timeout=10.0)
    store = Store(registry, KEYS)
    try:
        await registry.delete(KEYS.prefix, prefix=True)
        baseline = systemd_baseline(sb, n)
        print(f"baseline: systemctl start of {n} units (systemd alone) took {baseline:.2f} s")
        start_agent(sb, profile)

        async def registered() -> bool:
            return await store.get_machine(machine) is not None

        await until(registered, 30, "agent registration")

        names = [f"bench@{i}.service" for i in range(n)]
        unit_file = UnitFile.from_text(TEXT)
        unit_ops = [
            Put(KEYS.unit(name), codec.encode_unit(Unit(name, unit_file.text, unit_file.hash)))
            for name in names
        ]
        await registry.batch(unit_ops)
        schedule = [
            store.schedule_op(ScheduleEntry(machine, name, unit_file.hash, DesiredState.LAUNCHED))
            for name in names
        ]
        _, revision = await registry.get_prefix(KEYS.states)

        active: set[str] = set()
        done = asyncio.Event()

        async def watch() -> None:
            async for events in registry.watch_prefix(KEYS.states, revision + 1):
                for event in events:
                    name = event.key.rsplit("/", 1)[1]
                    if event.value and b'"active":"active"' in event.value:
                        active.add(name)
                    else:
                        active.discard(name)
                if len(active) == n:
                    done.set()
                    return

        watcher = asyncio.create_task(watch())
        started = time.perf_counter()
        await registry.batch(schedule)
        written = time.perf_counter() - started
        try:
            async with asyncio.timeout(120):
                await done.wait()
        except TimeoutError:
            raise SystemExit(f"only {len(active)}/{n} units active after 120 s") from None
        elapsed = time.perf_counter() - started
        await watcher
        running = sh(
            sb, "systemctl", "list-units", "--state=active", "--no-legend", "--plain", "bench@*"
        )
        print(
            f"{n} units: schedule written in {written:.2f} s; all {n} states active "
            f"{elapsed:.2f} s after the write began (target <= 3 s); "
            f"systemd reports {len(running.splitlines())} active"
        )

        await asyncio.sleep(5)  # let the passes that confirm the start settle
        cpu0, wall0 = agent_cpu_seconds(sb), time.monotonic()
        await asyncio.sleep(steady)
        cpu1, wall1 = agent_cpu_seconds(sb), time.monotonic()
        share = (cpu1 - cpu0) / (wall1 - wall0) * 100
        print(
            f"steady state with {n} units: agent CPU {cpu1 - cpu0:.2f} s over "
            f"{wall1 - wall0:.0f} s = {share:.2f}% of one core (target < 2%)"
        )
        if steady or profile:
            sh(sb, "systemctl", "stop", AGENT)
    finally:
        await registry.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=500)
    parser.add_argument("--steady", type=float, default=60.0)
    parser.add_argument("--sandbox", default="ab", help="sandbox name (at most 4 characters)")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up afterwards")
    parser.add_argument("--profile", default="", help="cProfile the agent into this file")
    args = parser.parse_args()
    sb = Sandbox.up(SandboxSpec(machines=1, fleetd=False), name=args.sandbox, timeout=120)
    try:
        asyncio.run(bench(sb, args.units, args.steady, args.profile))
    finally:
        if not args.keep:
            teardown(args.sandbox)


if __name__ == "__main__":
    main()
