"""End-to-end latency on an idle 3-machine sandbox: one unit, submit -> active in systemd.

    .venv/bin/python benchmarks/e2e_latency.py [--runs 200] [--sandbox bnch] [--secure | --compare]

``--secure`` runs it on a ``sandbox up --secure`` cluster (etcd over TLS with client
certificates and authentication, the API over HTTPS with an admin token);
``--compare`` runs both, one after the other on sandboxes of their own, and
prints them side by side (target: secure at most 10 % slower at p50).

Each run creates ``lat@<i>.service`` through the REST API in its target state
(``PUT /fleet/v1/units/lat@<i>.service`` with options and
``desiredState: launched``, one keep-alive connection, as a client would),
waits for it to run, then destroys it, waits until its state is gone and ``--gap`` seconds more
(the agent reloads systemd after an unload), so every run starts on an idle
cluster.  The time runs from sending the request to
systemd's ActiveEnterTimestampMonotonic in the machine the unit landed on
(sandbox machines share the host's monotonic clock).  Targets: p50 <= 100 ms,
p99 <= 250 ms.

Breakdown per run, from a watch on the registry in this process (arrival
times of the events) and systemd's timestamps:

* api:      request sent -> ``units/<name>`` written (event seen)
* engine:   ``units/`` event -> ``schedule/<machine>/<name>`` event
* agent:    ``schedule/`` event -> systemd starts the unit (InactiveExitTimestamp)
* systemd:  InactiveExit -> ActiveEnter (a simple service: fork and exec)
* publish:  ActiveEnter -> ``states/<machine>/<name>`` event saying active
  (after "active in systemd", so not part of the latency, but of ``start --block``)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Timeline, host_line, leader_name, load, percentile, sandbox, summary

from fleetd.registry.base import EventType
from fleetd.registry.etcd import EtcdRegistry
from fleetd.sandbox import Sandbox, SandboxSpec

PREFIX = "/fleet/"
OPTIONS = [
    {"section": "Unit", "name": "Description", "value": "latency probe"},
    {"section": "Service", "name": "ExecStart", "value": "/bin/sleep infinity"},
]
PARTS = ("api", "engine", "agent", "systemd")


async def until(timeline: Timeline, found: object, within: float, what: str) -> float:
    """Wait until ``found()`` returns a time (a registry event arrived); return it."""
    deadline = time.monotonic() + within
    while True:
        timeline.changed.clear()
        t = found()  # type: ignore[operator]
        if t is not None:
            return float(t)
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit(f"timed out waiting for {what}")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left):
                await timeline.changed.wait()


class Events:
    """Indexes the timeline by key as events arrive."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.seen = 0
        self.first: dict[tuple[EventType, str, bool], float] = {}
        self.machines: dict[str, str] = {}

    def at(self, kind: EventType, key: str, active: bool = False) -> float | None:
        events = self.timeline.events
        for t, typ, k, value, _ in events[self.seen :]:
            self.first.setdefault((typ, k, False), t)
            if b'"active":"active"' in value:
                self.first.setdefault((typ, k, True), t)
        self.seen = len(events)
        return self.first.get((kind, key, active))

    def scheduled_at(self, name: str) -> float | None:
        """When the first ``schedule/<machine>/<name>`` arrived (``machines[name]`` = where)."""
        self.at(EventType.PUT, "")
        if name not in self.machines:
            for (typ, key, _), _t in self.first.items():
                if typ is EventType.PUT and key.startswith(PREFIX + "schedule/"):
                    self.machines.setdefault(key.rsplit("/", 1)[1], key.split("/")[-2])
        machine = self.machines.get(name)
        if machine is None:
            return None
        return self.first[(EventType.PUT, f"{PREFIX}schedule/{machine}/{name}", False)]


def systemd_times(sb: Sandbox, machine: str, name: str) -> tuple[float, float]:
    ids = {m.machine_id: m.name for m in sb.machines}
    out = sb.exec(
        ids[machine],
        "systemctl",
        "show",
        "-p",
        "InactiveExitTimestampMonotonic,ActiveEnterTimestampMonotonic",
        "--value",
        name,
    ).stdout.split()
    return int(out[0]) / 1e6, int(out[1]) / 1e6


async def one_run(
    sb: Sandbox, client: httpx.AsyncClient, events: Events, name: str
) -> dict[str, float]:
    tl = events.timeline
    body = {"desiredState": "launched", "options": OPTIONS}
    sent = time.monotonic()
    response = await client.put(f"/fleet/v1/units/{name}", json=body)
    answered = time.monotonic()
    if response.status_code >= 300:
        raise SystemExit(f"PUT {name}: {response.status_code} {response.text}")
    written = await until(tl, lambda: events.at(EventType.PUT, PREFIX + "units/" + name), 30, name)
    where = await until(tl, lambda: events.scheduled_at(name), 30, f"{name} scheduled")
    machine = events.machines[name]
    state_key = f"{PREFIX}states/{machine}/{name}"
    published = await until(tl, lambda: events.at(EventType.PUT, state_key, True), 30, name)
    exited, entered = await asyncio.to_thread(systemd_times, sb, machine, name)
    # destroy, and wait until the machine is idle again
    deleted = await client.delete(f"/fleet/v1/units/{name}")
    if deleted.status_code >= 300:
        raise SystemExit(f"DELETE {name}: {deleted.status_code} {deleted.text}")
    await until(tl, lambda: events.at(EventType.DELETE, state_key), 30, f"{name} removed")
    return {
        "total": entered - sent,
        "response": answered - sent,
        "api": written - sent,
        "engine": where - written,
        "agent": exited - where,
        "systemd": entered - exited,
        "publish": published - entered,
    }


def _clients(sb: Sandbox) -> tuple[EtcdRegistry, dict[str, str], ssl.SSLContext | bool]:
    """The registry (etcd's root in a secure sandbox), the API's headers and TLS."""
    if not sb.secure:
        headers = {"Authorization": f"Bearer {sb.token}"} if sb.token else {}
        return EtcdRegistry(sb.etcd_endpoints, timeout=10.0), headers, False
    env = sb.env("admin")
    registry = EtcdRegistry(
        sb.etcd_endpoints,
        ca_file=env["FLEETCTL_CA_FILE"],
        cert_file=env["FLEETCTL_CERT_FILE"],
        key_file=env["FLEETCTL_KEY_FILE"],
        timeout=10.0,
    )
    verify = ssl.create_default_context(cafile=env["FLEETCTL_CA_FILE"])
    return registry, {"Authorization": f"Bearer {env['FLEETCTL_TOKEN']}"}, verify


async def bench(sb: Sandbox, runs: int, warmup: int, gap: float) -> list[float]:
    registry, headers, verify = _clients(sb)
    timeline = Timeline(registry, PREFIX)
    await timeline.start()
    events = Events(timeline)
    results: list[dict[str, float]] = []
    async with httpx.AsyncClient(
        base_url=sb.api_endpoint, headers=headers, timeout=30, verify=verify
    ) as client:
        for i in range(warmup + runs):
            result = await one_run(sb, client, events, f"lat@{i}.service")
            if i >= warmup:
                results.append(result)
            # the agent reloads systemd after an unload: let that finish (an idle cluster)
            await asyncio.sleep(gap)
    leader = await leader_name(registry, sb)
    await timeline.stop()
    await registry.close()

    total = [r["total"] for r in results]
    kind = "secure (TLS, client certificates, etcd auth, tokens)" if sb.secure else "plain"
    print(
        f"{kind}: {runs} runs (after {warmup} warm-up), engine leader on {leader}, API on m1; "
        f"load {load()}"
    )
    print(f"  submit -> active in systemd: {summary(total)}  (target p50 <= 100, p99 <= 250)")
    print(f"  API response: {summary([r['response'] for r in results])}")
    for part in PARTS:
        print(f"  {part:8s} {summary([r[part] for r in results])}")
    print(
        f"  publish  {summary([r['publish'] for r in results])} "
        "(after active; what start --block waits for in addition)"
    )
    means = {p: statistics.fmean(r[p] for r in results) for p in PARTS}
    largest = max(means, key=lambda p: means[p])
    share = means[largest] / statistics.fmean(total) * 100
    print(f"  largest part: {largest} ({share:.0f}% of the mean)")
    slow = [r for r in results if r["total"] >= percentile(total, 95)]
    print(
        "  slowest 5%: "
        + ", ".join(f"{p} {statistics.fmean(r[p] for r in slow) * 1000:.0f}" for p in PARTS)
        + " ms (means)"
    )
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between runs")
    parser.add_argument("--sandbox", default="bnch", help="sandbox name (at most 4 characters)")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up afterwards")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--secure", action="store_true", help="on a `sandbox up --secure` cluster")
    mode.add_argument("--compare", action="store_true", help="plain and secure, side by side")
    args = parser.parse_args()
    print(host_line())
    modes = [False, True] if args.compare else [args.secure]
    totals: dict[bool, list[float]] = {}
    for secure in modes:
        spec = SandboxSpec(machines=3, secure=secure)
        with sandbox(args.sandbox, spec, keep=args.keep and secure == modes[-1]) as sb:
            time.sleep(3)  # let the engine's first passes and the agents' registrations settle
            totals[secure] = asyncio.run(bench(sb, args.runs, args.warmup, args.gap))
    if args.compare:
        print("submit -> active, plain vs secure (target: secure p50 at most 10 % slower):")
        for label, p in (("p50", 50), ("p90", 90), ("p99", 99)):
            plain, secure = (percentile(totals[k], p) * 1000 for k in (False, True))
            print(
                f"  {label}: plain {plain:.1f} ms, secure {secure:.1f} ms "
                f"({(secure / plain - 1) * 100:+.1f} %)"
            )


if __name__ == "__main__":
    main()
