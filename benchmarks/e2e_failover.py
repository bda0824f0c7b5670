"""Failover on a 3-machine sandbox: partition the machine running a third of 300 units.

    .venv/bin/python benchmarks/e2e_failover.py [--units 300] [--at-most-once 60] [--sandbox bnch]

Starts ``--units`` units through the REST API (``--at-most-once`` of them with
``[X-Fleet] AtMostOnce=true``), agent TTL 10 s.  Once all run, one machine
that is not the engine leader (``--victim leader`` for the leader) is cut off
the network.  Meanwhile:

* the victim's lease TTL is read from etcd every 100 ms: its last heartbeat
  is the last time the remaining TTL went up (and, as a check, the deletion
  of ``machines/<id>`` minus the TTL);
* every 100 ms all machines list their active units (one long-lived
  ``fleetd.testing.unitwatch`` per machine asking systemd over D-Bus; the achieved interval
  is printed), which gives the number of ``AtMostOnce`` units ever active on two
  machines at once (target 0).

Printed: time from the last heartbeat until all the victim's units are
active elsewhere (systemd's ActiveEnterTimestamp in the machines; target
<= TTL + 1 s for ordinary units; ``AtMostOnce`` units wait a grace period
more by design), when the victim fenced its ``AtMostOnce`` units, and after
healing the partition how long the victim still ran units it no longer owned.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ActiveSampler,
    Timeline,
    active_since,
    host_line,
    leader_name,
    load,
    sandbox,
)

from fleetd.agent.fencing import default_margin
from fleetd.registry.base import EventType
from fleetd.registry.etcd import EtcdRegistry
from fleetd.sandbox import Sandbox, SandboxSpec

PREFIX = "/fleet/"
TTL = 10.0
PATTERNS = "fo@*"
SERVICE = [{"section": "Service", "name": "ExecStart", "value": "/bin/sleep infinity"}]
AT_MOST_ONCE = [*SERVICE, {"section": "X-Fleet", "name": "AtMostOnce", "value": "true"}]


class LeaseWatch:
    """Polls one lease's remaining TTL; remembers when it last went up (a refresh)."""

    def __init__(self, registry: EtcdRegistry, lease: int) -> None:
        self.registry = registry
        self.lease = lease
        self.last_refresh = (0.0, 0.0)  # (previous sample, sample that saw the TTL go up)
        self.expired_seen = 0.0

    async def run(self) -> None:
        previous, before = -1, time.monotonic()
        while True:
            now = time.monotonic()
            ttl = await self.registry.lease_ttl(self.lease)
            if ttl > previous >= 0:
                self.last_refresh = (before, now)
            if ttl < 0:
                self.expired_seen = now
                return
            previous, before = ttl, now
            await asyncio.sleep(0.1)


async def start_units(sb: Sandbox, names: list[str], amo: set[str]) -> None:
    headers = {"Authorization": f"Bearer {sb.token}"} if sb.token else {}
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=sb.api_endpoint, headers=headers, timeout=60) as client:

        async def one(name: str) -> None:
            body = {
                "desiredState": "launched",
                "options": AT_MOST_ONCE if name in amo else SERVICE,
            }
            async with gate:
                r = await client.put(f"/fleet/v1/units/{name}", json=body)
            if r.status_code >= 300:
                raise SystemExit(f"PUT {name}: {r.status_code} {r.text}")

        await asyncio.gather(*(one(n) for n in names))


def where(sample: dict[str, set[str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for machine, units in sample.items():
        for unit in units:
            found.setdefault(unit, []).append(machine)
    return found


async def wait_until(
    sampler: ActiveSampler, test: object, within: float, what: str
) -> tuple[float, dict[str, set[str]]]:
    """The first sample taken from now on that passes ``test``."""
    now = time.monotonic()
    deadline = now + within
    seen = 0
    while time.monotonic() < deadline:
        for t, sample in sampler.samples[seen:]:
            if t >= now and test(sample):  # type: ignore[operator]
                return t, sample
        seen = len(sampler.samples)
        await asyncio.sleep(0.05)
    raise SystemExit(f"timed out: {what}")


async def bench(sb: Sandbox, n: int, n_amo: int, victim_kind: str) -> None:
    machines = [m.name for m in sb.machines]
    ids = {m.machine_id: m.name for m in sb.machines}
    names = [f"fo@{i}.service" for i in range(n)]
    amo = set(names[:: max(1, n // n_amo)][:n_amo]) if n_amo else set()
    registry = EtcdRegistry(sb.etcd_endpoints, timeout=5.0)
    sampler = ActiveSampler(sb, PATTERNS)
    try:
        await start_units(sb, names, amo)
        _, placed = await wait_until(
            sampler, lambda s: sum(len(u) for u in s.values()) >= n, 180, "all units active"
        )
        leader = await leader_name(registry, sb)
        counts = {m: len(u) for m, u in placed.items()}
        followers = [m for m in machines if m != leader]
        victim = leader if victim_kind == "leader" else max(followers, key=lambda m: counts[m])
        victim_id = next(i for i, m in ids.items() if m == victim)
        owned = set(placed[victim])
        owned_amo, owned_plain = owned & amo, owned - amo
        kv = await registry.get(f"{PREFIX}machines/{victim_id}")
        assert kv is not None and kv.lease
        print(
            f"{n} units active ({', '.join(f'{m}: {c}' for m, c in counts.items())}), "
            f"{len(amo)} AtMostOnce; engine leader {leader}; partitioning {victim} "
            f"({len(owned_plain)} ordinary + {len(owned_amo)} AtMostOnce units); load {load()}"
        )
        timeline = Timeline(registry, PREFIX)
        await timeline.start()
        lease = LeaseWatch(registry, kv.lease)
        lease_task = asyncio.get_running_loop().create_task(lease.run())
        deadline = time.monotonic() + 2 * TTL
        while lease.last_refresh[1] == 0.0:  # a heartbeat seen: the cut comes 1 s after it
            if time.monotonic() > deadline:
                raise SystemExit("no lease refresh of the victim seen")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        sb.partition(victim)
        cut = time.monotonic()
        others = [m for m in machines if m != victim]

        def moved(sample: dict[str, set[str]]) -> bool:
            elsewhere = set().union(*(sample[m] for m in others))
            return owned <= elsewhere

        await wait_until(sampler, moved, 60, "the victim's units active elsewhere")
        since: dict[str, float] = {}
        for m in others:
            since.update(active_since(sb, m, PATTERNS))
        await lease_task
        deleted = timeline.times("machines/", EventType.DELETE)
        gone = deleted.get(f"{PREFIX}machines/{victim_id}")
        moves = {
            k.rsplit("/", 1)[1]: t
            for k, t in timeline.times("schedule/").items()
            if t > cut and k.rsplit("/", 1)[1] in owned
        }
        rescheduled = list(moves.values())
        plain_moves = [t for u, t in moves.items() if u in owned_plain]
        await timeline.stop()

        await asyncio.sleep(1.0)
        sb.heal(victim)
        healed = time.monotonic()

        def victim_clean(sample: dict[str, set[str]]) -> bool:
            return not (sample[victim] & owned)

        clean_at, _ = await wait_until(sampler, victim_clean, 120, "the healed victim stopped")
        last_dirty = max(
            (t for t, s in sampler.samples if healed <= t < clean_at and s[victim] & owned),
            default=healed,
        )

        def settled(sample: dict[str, set[str]]) -> bool:
            w = where(sample)
            return len(w) == n and all(len(ms) == 1 for ms in w.values())

        await wait_until(sampler, settled, 60, "every unit active exactly once")
    finally:
        sampler.stop()
        await registry.close()

    refresh_lo, refresh_hi = lease.last_refresh
    heartbeat = refresh_hi
    plain_done = max(since[u] for u in owned_plain) if owned_plain else heartbeat
    amo_done = max(since[u] for u in owned_amo) if owned_amo else heartbeat
    samples = [(t, s) for t, s in sampler.samples if t >= cut - 1]
    doubled = {u for _, s in samples for u, ms in where(s).items() if u in amo and len(ms) > 1}
    doubled_plain = max(
        (sum(1 for u, ms in where(s).items() if u not in amo and len(ms) > 1) for _, s in samples),
        default=0,
    )
    victim_amo_last = max(
        (t for t, s in samples if t >= cut and s[victim] & owned_amo), default=cut
    )
    gaps = sampler.intervals()
    print(
        f"  last heartbeat: {heartbeat - cut:+.2f} s from the cut (refresh seen between "
        f"{refresh_lo - cut:+.2f} and {refresh_hi - cut:+.2f} s); machine key deleted "
        + (f"{gone - cut:+.2f} s (deletion - TTL = {gone - TTL - cut:+.2f} s)" if gone else "-")
    )
    if gone and rescheduled:
        print(
            f"  machine key deleted {gone - heartbeat:.2f} s after the last heartbeat; then "
            f"the engine's schedule writes for the victim's units: first "
            f"{min(rescheduled) - gone:.2f} s, last {max(rescheduled) - gone:.2f} s later; "
            f"ordinary units all active {plain_done - gone:.2f} s after the deletion"
        )
    if gone and plain_moves:
        firsts = [since[u] for u in owned_plain]
        print(
            f"  ordinary units: last schedule write {max(plain_moves) - gone:.2f} s after the "
            f"deletion; first active in systemd {min(firsts) - gone:.2f} s, last "
            f"{max(firsts) - gone:.2f} s"
        )
    print(
        f"  last heartbeat -> all {len(owned_plain)} ordinary units active elsewhere: "
        f"{plain_done - heartbeat:.2f} s (target <= TTL + 1 = {TTL + 1:.0f} s)"
    )
    print(
        f"  last heartbeat -> all {len(owned_amo)} AtMostOnce units active elsewhere: "
        f"{amo_done - heartbeat:.2f} s (TTL + the engine's grace of {max(1.0, TTL / 6):.1f} s "
        "by design)"
    )
    print(
        f"  victim's AtMostOnce units last seen active there {victim_amo_last - heartbeat:.2f} s "
        f"after its last heartbeat (fenced at TTL - {default_margin(TTL):.1f} s)"
    )
    print(
        f"  AtMostOnce units ever active on two machines in one sample: {len(doubled)} "
        f"(target 0); ordinary units running on both sides: up to {doubled_plain}"
    )
    print(
        f"  after healing: the victim still ran units it no longer owned for "
        f"{last_dirty - healed:.2f} s (all gone in the sample at {clean_at - healed:.2f} s)"
    )
    print(
        f"  sampling: {len(gaps)} reports from {len(machines)} machines, interval "
        f"median {statistics.median(gaps) * 1000:.0f} ms, max {max(gaps) * 1000:.0f} ms; "
        f"load {load()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--at-most-once", type=int, default=60)
    parser.add_argument("--victim", choices=("follower", "leader"), default="follower")
    parser.add_argument("--sandbox", default="bnch", help="sandbox name (at most 4 characters)")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up afterwards")
    args = parser.parse_args()
    print(host_line())
    spec = SandboxSpec(machines=3, agent_ttl=TTL)
    with sandbox(args.sandbox, spec, keep=args.keep) as sb:
        asyncio.run(bench(sb, args.units, args.at_most_once, args.victim))


if __name__ == "__main__":
    main()
