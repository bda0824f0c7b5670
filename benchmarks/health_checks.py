"""Health-check cost: 1,000 units checked every 5 s on one machine, the agent's CPU share.

    .venv/bin/python benchmarks/health_checks.py [--units 1000] [--seconds 30] [--interval 5]

Runs the agent's health component (``fleetd.agent.health.HealthMonitor`` with the real
probes) in this process against local services in a child process (HTTP and TCP
servers on 127.0.0.1, so their CPU is not counted here), for several mixes of checks:

* ``http``: every unit an ``http://`` check (fleetd's own HTTP/1.1 GET);
* ``tcp``: every unit a ``tcp://`` check;
* ``mixed``: 45 % http, 45 % tcp, 10 % ``exec:/bin/true``;
* ``exec``: every unit ``exec:/bin/true`` (not in the default run: see ``--mixes``);
* ``http-httpx``: the ``http`` mix with httpx's client instead (for comparison only).

All units become active at once (so every round of checks is one burst, the worst
case for latency), a warm-up round is not counted, then the CPU time of this process
(user + system, ``getrusage``) over ``--seconds`` is reported as a share of one core,
with the commands' own CPU (children) apart.  Target: < 5 % of a core for 1,000 units.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import host_line

from fleetd.agent.health import HealthMonitor, Runner
from fleetd.agent.probes import run_probe
from fleetd.healthcheck import HealthCheck, HttpProbe, Probe
from fleetd.model import Health, UnitHealth
from fleetd.specifiers import HostFacts
from fleetd.unithealth import CheckResult

PORTS = 4  # per kind: connections spread over a few listeners, as over several services


# --- the services (child process) -------------------------------------------------


async def serve() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
            await writer.drain()
        writer.close()

    async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    servers = [await asyncio.start_server(http, "127.0.0.1", 0, backlog=1024) for _ in range(PORTS)]
    servers += [await asyncio.start_server(tcp, "127.0.0.1", 0, backlog=1024) for _ in range(PORTS)]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    print(json.dumps({"http": ports[:PORTS], "tcp": ports[PORTS:]}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed


# --- the measurement ---------------------------------------------------------------


def checks(units: int, mix: str, ports: dict[str, list[int]]) -> list[HealthCheck]:
    def http(i: int) -> str:
        return f"http://127.0.0.1:{ports['http'][i % PORTS]}/health"

    def tcp(i: int) -> str:
        return f"tcp://127.0.0.1:{ports['tcp'][i % PORTS]}"

    kinds: list[Callable[[int], str]]
    if mix.startswith("http"):
        kinds = [http] * 20
    elif mix == "tcp":
        kinds = [tcp] * 20
    elif mix == "exec":
        kinds = [lambda i: "exec:/bin/true"] * 20
    else:
        kinds = [http] * 9 + [tcp] * 9 + [lambda i: "exec:/bin/true"] * 2
    return [HealthCheck(kinds[i % len(kinds)](i)) for i in range(units)]


def httpx_runner() -> tuple[Runner, Callable[[], object]]:
    import httpx

    client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))

    async def run(probe: Probe, within: float) -> CheckResult:
        if not isinstance(probe, HttpProbe):
            return await run_probe(probe, within)
        try:
            r = await client.get(str(probe), timeout=within)
        except httpx.HTTPError as exc:
            return CheckResult(False, str(exc))
        return CheckResult(200 <= r.status_code < 400, f"HTTP {r.status_code}")

    return run, client.aclose


def cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


async def measure(
    mix: str, units: int, interval: float, seconds: float, ports: dict[str, list[int]]
) -> dict[str, float]:
    changes: list[UnitHealth] = []
    runner: Runner = run_probe
    close: Callable[[], object] | None = None
    if mix == "http-httpx":
        runner, close = httpx_runner()
    monitor = HealthMonitor(
        host=HostFacts("bench", "0" * 32, "0" * 32, "0"),
        on_change=lambda name, health: changes.append(health),
        clock=time.monotonic,
        wall=time.time,
        runner=runner,
    )
    task = asyncio.create_task(monitor.run(), name="health-checks")
    for i, check in enumerate(checks(units, mix, ports)):
        monitor.observe(
            f"bench@{i}.service",
            True,
            HealthCheck(check.check, interval=interval, timeout=2.0),
        )
    await asyncio.sleep(interval * 1.5)  # warm-up: the first round and its connections
    healthy = sum(1 for h in monitor.health.values() if h.health is Health.HEALTHY)
    before, runs, t0 = cpu(), monitor.checks_run, time.monotonic()
    await asyncio.sleep(seconds)
    after, elapsed = cpu(), time.monotonic() - t0
    done = monitor.checks_run - runs
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if close is not None:
        await close()  # type: ignore[misc]
    unhealthy = sum(1 for h in monitor.health.values() if h.health is not Health.HEALTHY)
    return {
        "cpu": 100 * (after[0] - before[0]) / elapsed,
        "children": 100 * (after[1] - before[1]) / elapsed,
        "per_check_us": 1e6 * (after[0] - before[0]) / max(done, 1),
        "checks_per_s": done / elapsed,
        "healthy_after_warmup": healthy,
        "not_healthy": unhealthy,
        "reports": len(changes),
    }


async def run_all(args: argparse.Namespace, ports: dict[str, list[int]]) -> None:
    print(host_line())
    print(
        f"{args.units} units, a check every {args.interval:g}s each, "
        f"measured over {args.seconds:g}s after a warm-up (python {sys.version.split()[0]})"
    )
    print(
        f"{'mix':<12} {'agent CPU':>10} {'commands':>9} {'µs/check':>9} "
        f"{'checks/s':>9} {'not healthy':>12} {'reports':>8}"
    )
    for mix in args.mixes.split(","):
        r = await measure(mix, args.units, args.interval, args.seconds, ports)
        print(
            f"{mix:<12} {r['cpu']:>9.2f}% {r['children']:>8.2f}% {r['per_check_us']:>9.0f} "
            f"{r['checks_per_s']:>9.1f} {r['not_healthy']:>12.0f} {r['reports']:>8.0f}",
            flush=True,
        )
    print(f"target: agent CPU < 5% of one core for {args.units} units (pid {os.getpid()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--mixes", default="http,tcp,mixed,http-httpx")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(4096, hard)), hard))
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        asyncio.run(run_all(args, json.loads(server.stdout.readline())))
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
