"""Fault injection on a cluster of 3 real systemd machines with a 3-member etcd
(docs/design.md, "Bad input and faults"): fleetd killed (leader during a burst, an
agent), a machine powered off and booted, partitioned and healed, an etcd member lost,
etcd restarted, fleetd restarted under a blocking ``fleetctl start``.

Each test asserts the end state inside the machines, with systemctl, not only in
the registry.  The sandbox (agent TTL 10 s) is shared by this module only; its name
derives from ``$FLEETD_SANDBOX`` (``_name``), so runs under different names share a host.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from agent_harness import until
from cluster_helpers import (
    exactly_once,
    finish,
    fleetctl,
    fleetctl_process,
    unit_properties,
    where_active,
)

from fleetd.errors import RegistryUnavailable
from fleetd.model import DesiredState, Unit
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Store
from fleetd.sandbox import Sandbox, SandboxSpec, teardown
from fleetd.sandbox import etcd as sandbox_etcd
from fleetd.sandbox.cuts import Cut
from fleetd.sandbox.faults import signal_fleetd
from fleetd.sandbox.seed import FLEETD_UNIT
from fleetd.sandbox.state import instance
from fleetd.testing.chaos.history import History, Interval, Record
from fleetd.testing.chaos.sampler import Sampler
from fleetd.unitfile import UnitFile

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(300)]


def _name(session: str) -> str:
    """This module's sandbox beside the session's ``session`` (``$FLEETD_SANDBOX``): ``f``
    and three hex digits of a hash of it, ``flt`` beside the default one."""
    return "f" + hashlib.sha256(session.encode()).hexdigest()[:3] if session else "flt"


NAME = _name(instance().name)
TTL = 10.0
SPEC = SandboxSpec(machines=3, etcd_members=3, agent_ttl=TTL)
SLEEPER = "[Unit]\nDescription=fault test %n\n\n[Service]\nExecStart=/bin/sleep 100000\n"
# Generous: the host may be shared with other busy sandboxes.
SETTLE = 90.0


@pytest.fixture(scope="module")
def cluster_sandbox(session_sandbox: object) -> Iterator[Sandbox]:
    """This module's own sandbox; ``session_sandbox`` turns SIGTERM into a clean teardown."""
    teardown(NAME)  # what an interrupted earlier run of this module may have left
    started = time.monotonic()
    try:
        sandbox = Sandbox.up(SPEC, name=NAME, timeout=180)
        print(
            f"\nsandbox {NAME} (3 machines, 3 etcd members) up in {time.monotonic() - started:.1f}s"
        )
        yield sandbox
    finally:
        teardown(NAME)


class Faults:
    """One test's view of the cluster: its units (all named ``flt-<tag>-...``) and probes."""

    def __init__(self, sandbox: Sandbox, store: Store) -> None:
        self.sandbox = sandbox
        self.store = store
        self.tag = uuid.uuid4().hex[:6]
        self.prefix = f"flt-{self.tag}-"
        self.pattern = f"{self.prefix}*"
        self.by_id = {m.machine_id: m.name for m in sandbox.machines}

    def unit(self, what: str) -> str:
        return f"{self.prefix}{what}.service"

    def text(self, machine: str | None = None, extra: str = "") -> str:
        """A long-running service; ``machine`` pins it there (``MachineID=``)."""
        fleet = f"MachineID={self.sandbox.machine(machine).machine_id}\n" if machine else ""
        fleet += extra
        return SLEEPER + (f"\n[X-Fleet]\n{fleet}" if fleet else "")

    async def submit(self, name: str, text: str) -> None:
        """Write the unit, launched; retried while etcd is unavailable (just after a restart
        the client's gRPC channel is still in its reconnect backoff, up to 2 s)."""
        unit_file = UnitFile.from_text(text)
        unit = Unit(name, unit_file.text, unit_file.hash, DesiredState.LAUNCHED)

        async def put() -> bool:
            try:
                await self.store.put_unit(unit)
            except RegistryUnavailable:
                return False
            return True

        await until(put, SETTLE, f"etcd never took {name}", interval=0.2)

    async def leader(self) -> str:
        """The sandbox machine whose engine leads (waits for one)."""

        async def current() -> str | None:
            found = await self.store.current_leader()
            return self.by_id.get(found.machine) if found else None

        return await until(current, SETTLE, "no engine leader", interval=0.1)

    async def placed(self, machines: list[str] | None = None) -> dict[str, list[str]]:
        """This test's units active in systemd: unit -> machines."""
        return await asyncio.to_thread(where_active, self.sandbox, self.pattern, machines)

    async def settled(
        self, names: list[str], within: float = SETTLE, machines: list[str] | None = None
    ) -> dict[str, str]:
        """Wait until exactly ``names`` are active, each on one machine; unit -> machine."""

        async def probe() -> dict[str, list[str]] | None:
            now = await self.placed(machines)
            return now if exactly_once(now, names) else None

        try:
            found = await until(probe, within, "units not active exactly once", interval=0.3)
        except AssertionError:
            now = await self.placed(machines)
            missing = sorted(set(names) - set(now))
            twice = {n: m for n, m in now.items() if len(m) > 1}
            raise AssertionError(
                f"not within {within:g}s: {len(names)} units active exactly once; "
                f"missing {len(missing)} {missing[:5]}, on several machines {twice}"
            ) from None
        return {name: where[0] for name, where in found.items()}

    async def leases(self) -> dict[str, int]:
        """Each registered machine's lease: a machine that vanished for a while (its lease
        expired) comes back under another one."""
        keys = Keys()
        items, _ = await self.store.registry.get_prefix(keys.machines)
        return {self.by_id.get(kv.key[len(keys.machines) :], kv.key): kv.lease for kv in items}

    def properties(self, machine: str, names: list[str]) -> dict[str, dict[str, str]]:
        return unit_properties(
            self.sandbox,
            machine,
            names,
            ["ActiveState", "MainPID", "ActiveEnterTimestampMonotonic"],
        )

    def fleetd_pid(self, machine: str) -> str:
        proc = self.sandbox.exec(
            machine, "systemctl", "show", "-p", "MainPID", "--value", FLEETD_UNIT
        )
        return proc.stdout.strip()

    def active_on(self, machine: str, unit: str) -> bool:
        proc = self.sandbox.exec(machine, "systemctl", "is-active", unit)
        return proc.stdout.strip() == "active"

    def fleetd_active(self, machine: str) -> bool:
        proc = self.sandbox.exec(machine, "systemctl", "is-active", FLEETD_UNIT)
        return proc.stdout.strip() == "active"

    def etcd_member(self, machine: str, *action: str) -> None:
        proc = self.sandbox.exec(machine, "systemctl", *action, sandbox_etcd.MEMBER_UNIT)
        assert proc.returncode == 0, proc.stderr

    def restore(self) -> None:
        """Undo every fault: machines healed and running, etcd members up, fleetd registered."""
        sandbox = self.sandbox
        for m in sandbox.machines:
            if m.partitioned or m.cuts:
                sandbox.heal(m.name)
            if not sandbox.running(m.name):
                sandbox.boot(m.name)
        for m in sandbox.machines:
            sandbox.exec(m.name, "systemctl", "start", sandbox_etcd.MEMBER_UNIT)
        sandbox_etcd.wait_healthy(sandbox.etcd_endpoints, SETTLE)
        sandbox.wait_registered([m.name for m in sandbox.machines], SETTLE)


@pytest.fixture
async def faults(cluster_sandbox: Sandbox) -> AsyncIterator[Faults]:
    registry = EtcdRegistry(list(cluster_sandbox.etcd_endpoints), timeout=5.0)
    f = Faults(cluster_sandbox, Store(registry, Keys()))
    try:
        yield f
    finally:
        try:
            await asyncio.to_thread(f.restore)
            await registry.delete(Keys().units + f.prefix, prefix=True)
        finally:
            await registry.close()


async def test_killed_agent_restarts_without_restarting_units(faults: Faults) -> None:
    leader = await faults.leader()
    victim = next(m.name for m in faults.sandbox.machines if m.name != leader)
    names = [faults.unit(f"keep{i}") for i in range(3)]
    for name in names:
        await faults.submit(name, faults.text(victim))
    assert set((await faults.settled(names)).values()) == {victim}
    before = faults.properties(victim, names)
    old_pid = faults.fleetd_pid(victim)

    faults.sandbox.kill_fleetd(victim)

    def restarted() -> bool:
        pid = faults.fleetd_pid(victim)
        return pid not in ("", "0", old_pid) and faults.fleetd_active(victim)

    await until(lambda: asyncio.to_thread(restarted), SETTLE, "fleetd did not come back")
    # The restarted agent acts (a new unit starts there), and it left the others alone.
    probe = faults.unit("probe")
    await faults.submit(probe, faults.text(victim))
    await faults.settled([*names, probe])
    assert faults.properties(victim, names) == before


async def test_powered_off_machine_units_move_and_it_rejoins_empty(faults: Faults) -> None:
    names = [faults.unit(f"move{i}") for i in range(6)]
    for name in names:
        await faults.submit(name, faults.text())
    placed = await faults.settled(names)
    # Not m1: its API serves fleetctl; the victim must run some of the units.
    victim = max(("m2", "m3"), key=list(placed.values()).count)
    moved = [n for n, m in placed.items() if m == victim]
    assert moved, placed

    faults.sandbox.poweroff(victim)
    after = await faults.settled(names, within=TTL + SETTLE)
    assert victim not in after.values()
    kept = {n: m for n, m in placed.items() if m != victim}
    assert {n: after[n] for n in kept} == kept  # only the victim's units moved

    faults.sandbox.boot(victim)
    # Once the rebooted agent has started new work, none of its old units came back.
    probe = faults.unit("probe")
    await faults.submit(probe, faults.text(victim))
    final = await faults.settled([*names, probe])
    assert [n for n, m in final.items() if m == victim] == [probe]
    assert {n: final[n] for n in names} == after


async def test_partitioned_machine_stops_moved_units_after_heal(faults: Faults) -> None:
    names = [faults.unit(f"part{i}") for i in range(6)]
    names.append(faults.unit("once"))
    for name in names[:-1]:
        await faults.submit(name, faults.text())
    await faults.submit(names[-1], faults.text(extra="AtMostOnce=true\n"))
    placed = await faults.settled(names)
    victim = max(("m2", "m3"), key=list(placed.values()).count)
    moved = [n for n, m in placed.items() if m == victim]
    assert moved, placed
    others = [m.name for m in faults.sandbox.machines if m.name != victim]

    faults.sandbox.partition(victim)
    cut = time.monotonic()
    elsewhere = await faults.settled(names, within=TTL + SETTLE, machines=others)
    moved_after = time.monotonic() - cut

    faults.sandbox.heal(victim)
    healed = time.monotonic()

    async def victim_clean() -> bool:
        still = await faults.placed([victim])
        return not set(moved) & set(still)

    await until(victim_clean, TTL + SETTLE, f"moved units still run on {victim} after the heal")
    print(
        f"\n{len(moved)} units of {victim} active elsewhere {moved_after:.1f}s after the "
        f"partition; stopped there {time.monotonic() - healed:.1f}s after the heal"
    )
    assert await faults.settled(names, within=10) == elsewhere


async def test_lost_etcd_member_changes_nothing(faults: Faults, tmp_path: Path) -> None:
    before_names = [faults.unit(f"pre{i}") for i in range(3)]
    for name in before_names:
        await faults.submit(name, faults.text())
    before = await faults.settled(before_names)
    pids = {n: faults.properties(m, [n])[n] for n, m in before.items()}
    leases = await faults.leases()
    # m1's member: first in every fleetd's endpoint list, and m1 serves the API.
    faults.etcd_member("m1", "kill", "--signal=KILL")
    faults.etcd_member("m1", "stop")  # no automatic restart: the member stays lost
    assert not sandbox_etcd.healthy(faults.sandbox.etcd_endpoints[0])

    new = {faults.unit(f"post-{m.name}"): m.name for m in faults.sandbox.machines}
    files = []
    for name, machine in new.items():
        (tmp_path / name).write_text(faults.text(machine))
        files.append(str(tmp_path / name))
    proc = await asyncio.to_thread(
        fleetctl, faults.sandbox, "start", "--block-attempts", "300", *files
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = await faults.settled([*before_names, *new])
    assert {n: after[n] for n in new} == new
    assert {n: faults.properties(m, [n])[n] for n, m in before.items()} == pids
    assert await faults.leases() == leases  # no machine ever looked unregistered


async def test_a_new_leader_keeps_the_units_of_a_machine_slow_to_register_again(
    faults: Faults,
) -> None:
    """The leader pauses and meanwhile a machine's registration vanishes: the next leader
    never saw it registered, so it waits for it (the mass-loss guard) instead of moving
    its units; once the machine is back, nothing moved or restarted."""
    names = [faults.unit(f"slow{i}") for i in range(6)]
    for name in names:
        await faults.submit(name, faults.text())
    placed = await faults.settled(names)
    leader = await faults.leader()
    others = [m.name for m in faults.sandbox.machines if m.name != leader]
    slow = max(others, key=list(placed.values()).count)
    mine = [n for n, m in placed.items() if m == slow]
    assert mine, placed
    pids = faults.properties(slow, mine)
    lease = (await faults.leases())[slow]
    sandbox = faults.sandbox
    try:
        signal_fleetd(sandbox, leader, "STOP")
        signal_fleetd(sandbox, slow, "STOP")
        await faults.store.registry.revoke_lease(lease)  # its registration is gone

        async def next_leader() -> str | None:
            found = await faults.leader()
            return found if found != leader else None

        await until(next_leader, SETTLE, "no other engine took over", interval=0.2)

        async def says_so() -> bool:  # engine/guard: GET /machines, list-machines, events
            guard = await faults.store.get_guard()
            absent = [faults.by_id.get(m) for m in guard.absent] if guard else []
            return guard is not None and guard.cause == "new leader" and slow in absent

        await until(says_so, SETTLE, "the new leader never said its guard holds", interval=0.2)
        signal_fleetd(sandbox, leader, "CONT")
        signal_fleetd(sandbox, slow, "CONT")

        async def back() -> bool:
            return slow in await faults.leases()

        await until(back, SETTLE, f"{slow} never registered again", interval=0.2)
    finally:
        for name in (leader, slow):
            signal_fleetd(sandbox, name, "CONT")
    assert await faults.settled(names) == placed
    assert faults.properties(slow, mine) == pids


async def test_every_machine_cut_off_from_etcd_for_three_ttls_keeps_its_units(
    faults: Faults,
) -> None:
    """Every machine's processes cut off from etcd's client port for 3 TTLs (etcd stays
    up): every lease expires and no engine can act; healed, the agents register again
    and adopt what runs: every unit active with its old MainPID, nothing moved."""
    names = [faults.unit(f"cut{i}") for i in range(6)]
    for name in names:
        await faults.submit(name, faults.text())
    placed = await faults.settled(names)
    pids = {n: faults.properties(m, [n])[n]["MainPID"] for n, m in placed.items()}
    sandbox = faults.sandbox
    cut = time.monotonic()
    for m in sandbox.machines:
        sandbox.cut(m.name, Cut.ETCD_CLIENTS)

    async def all_gone() -> bool:
        return not await faults.leases()

    await until(all_gone, SETTLE, "machines still registered while cut off", interval=0.5)
    await asyncio.sleep(max(0.0, 3 * TTL - (time.monotonic() - cut)))  # the fault's length
    for m in sandbox.machines:
        sandbox.heal(m.name)
    await asyncio.to_thread(sandbox.wait_registered, [m.name for m in sandbox.machines], SETTLE)
    assert await faults.settled(names) == placed
    assert {n: faults.properties(m, [n])[n]["MainPID"] for n, m in placed.items()} == pids


async def test_etcd_down_for_two_minutes_stops_and_restarts_nothing(faults: Faults) -> None:
    """Every etcd member stopped for 2 minutes, then started: no unit stopped or restarted
    (same MainPIDs), no machine re-registered, and a unit started afterwards runs."""
    names = [faults.unit(f"out{i}") for i in range(3)]
    for name in names:
        await faults.submit(name, faults.text())
    placed = await faults.settled(names)
    pids = {n: faults.properties(m, [n])[n]["MainPID"] for n, m in placed.items()}
    machines = [m.name for m in faults.sandbox.machines]

    def each_member(action: str) -> None:
        for name in machines:
            faults.etcd_member(name, action)

    await asyncio.to_thread(each_member, "stop")
    await asyncio.sleep(120.0)  # the outage's length
    await asyncio.to_thread(each_member, "start")
    await asyncio.to_thread(sandbox_etcd.wait_healthy, faults.sandbox.etcd_endpoints, SETTLE)
    probe = faults.unit("after")
    await faults.submit(probe, faults.text())
    after = await faults.settled([*names, probe])
    assert {n: after[n] for n in names} == placed
    assert {n: faults.properties(m, [n])[n]["MainPID"] for n, m in placed.items()} == pids


async def test_etcd_restart_loses_nothing(faults: Faults) -> None:
    before_names = [faults.unit(f"old{i}") for i in range(3)]
    for name in before_names:
        await faults.submit(name, faults.text())
    before = await faults.settled(before_names)
    pids = {n: faults.properties(m, [n])[n] for n, m in before.items()}
    leases = await faults.leases()

    def kill_all() -> None:
        for m in faults.sandbox.machines:
            faults.etcd_member(m.name, "kill", "--signal=KILL")

    await asyncio.to_thread(kill_all)  # Restart=always brings every member back
    await asyncio.to_thread(sandbox_etcd.wait_healthy, faults.sandbox.etcd_endpoints, SETTLE)

    # Every agent's watch and the engine's resumed: one new unit pinned on each machine.
    new = {faults.unit(f"new-{m.name}"): m.name for m in faults.sandbox.machines}
    for name, machine in new.items():
        await faults.submit(name, faults.text(machine))
    after = await faults.settled([*before_names, *new])
    assert {n: after[n] for n in new} == new
    assert {n: after[n] for n in before} == before
    assert {n: faults.properties(m, [n])[n] for n, m in before.items()} == pids
    assert await faults.leases() == leases  # etcd extended them: no machine re-registered


async def test_fleetd_restart_under_a_blocking_start(faults: Faults, tmp_path: Path) -> None:
    name = faults.unit("slow")
    # Activating for a few seconds, on m1, whose fleetd also serves fleetctl's endpoint.
    text = faults.text("m1").replace("[Service]\n", "[Service]\nExecStartPre=/bin/sleep 4\n")
    path = tmp_path / name
    path.write_text(text)
    proc = fleetctl_process(faults.sandbox, "start", "--block-attempts", "600", str(path))
    try:

        def activating() -> bool:
            state = faults.properties("m1", [name])[name]["ActiveState"]
            return state == "activating"

        await until(lambda: asyncio.to_thread(activating), SETTLE, f"{name} never activating")
        invocation = unit_properties(faults.sandbox, "m1", [name], ["InvocationID"])
        restart = faults.sandbox.exec("m1", "systemctl", "restart", FLEETD_UNIT, timeout=90)
        assert restart.returncode == 0, restart.stderr
        result = await asyncio.to_thread(finish, proc, 120)
    finally:
        proc.kill()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Unit {name} started on m1" in result.stdout
    assert await faults.settled([name]) == {name: "m1"}
    # The restarted agent adopted the unit it found activating: it was not started again.
    assert unit_properties(faults.sandbox, "m1", [name], ["InvocationID"]) == invocation


async def test_leader_killed_during_a_500_unit_burst(faults: Faults, tmp_path: Path) -> None:
    template = f"{faults.prefix}burst@.service"
    (tmp_path / template).write_text(SLEEPER)
    names = [f"{faults.prefix}burst@{i}.service" for i in range(1, 501)]
    args = [str(tmp_path / n) for n in names]
    leader = await faults.leader()
    endpoint = next(m.name for m in faults.sandbox.machines if m.name != leader)
    started = time.monotonic()
    procs = [
        fleetctl_process(
            faults.sandbox, "start", "--no-block", *args[:250], endpoint_machine=endpoint
        )
    ]
    try:

        async def some_scheduled() -> int:
            entries = await faults.store.list_all_schedule()
            return sum(e.name.startswith(faults.prefix) for e in entries) >= 50

        await until(some_scheduled, SETTLE, "the leader placed none of the burst", interval=0.1)
        faults.sandbox.kill_fleetd(leader)
        killed = time.monotonic() - started
        # The second half arrives while the engine has no leader (or a fresh one).
        procs.append(
            fleetctl_process(
                faults.sandbox, "start", "--no-block", *args[250:], endpoint_machine=endpoint
            )
        )
        done = [await asyncio.to_thread(finish, p, 240) for p in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc in done:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    placed = await faults.settled(names, within=240)
    print(
        f"\n500 units: leader {leader} killed at {killed:.1f}s, "
        f"all active exactly once at {time.monotonic() - started:.1f}s "
        f"({ {m: list(placed.values()).count(m) for m in sorted(set(placed.values()))} })"
    )
    entries = await faults.store.list_all_schedule()
    mine = [e.name for e in entries if e.name.startswith(faults.prefix)]
    assert sorted(mine) == sorted(names)  # scheduled once each in the registry too


class Sampled:
    """systemd in every machine sampled every 100 ms (the chaos run's sampler) for this
    test's units: each unit's intervals of activity per machine."""

    def __init__(self, faults: Faults) -> None:
        self.records: list[Record] = []
        self.sampler = Sampler(faults.sandbox, faults.pattern, self.records.append)

    def __enter__(self) -> Sampled:
        self.sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sampler.stop()

    def intervals(self, unit: str) -> list[Interval]:
        return History(list(self.records)).intervals().get(unit, [])


async def _at_most_once_on_a_victim(faults: Faults) -> tuple[str, str, list[str]]:
    """An AtMostOnce unit and a plain one, running; (the unit, its machine, the others)."""
    once, plain = faults.unit("once"), faults.unit("plain")
    await faults.submit(once, faults.text(extra="AtMostOnce=true\n"))
    await faults.submit(plain, faults.text())
    placed = await faults.settled([once, plain])
    victim = placed[once]
    return once, victim, [m.name for m in faults.sandbox.machines if m.name != victim]


async def _stopped_before_it_moved(
    faults: Faults, sampled: Sampled, once: str, victim: str, others: list[str], fault: str
) -> None:
    """Wait until ``once`` runs on another machine; it must have stopped on ``victim``
    (at the last sample seeing it there) before any sample saw it elsewhere."""
    cut = time.monotonic()

    async def moved() -> bool:  # the sampler saw it on another machine
        return any(s.machine in others for s in sampled.intervals(once))

    await until(moved, TTL + SETTLE, f"{once} never started elsewhere", interval=0.1)
    assert not faults.active_on(victim, once), f"{once} runs on {victim} and elsewhere"
    spans = sampled.intervals(once)
    there = [s for s in spans if s.machine == victim]
    elsewhere = [s for s in spans if s.machine != victim and s.start > there[0].start]
    assert there and elsewhere, spans
    assert there[-1].end < elsewhere[0].start, f"{once} ran on two machines: {spans}"
    print(
        f"\n{fault}: {once} last seen on {victim} {there[-1].end - cut:.2f}s after the fault, "
        f"first on {elsewhere[0].machine} {elsewhere[0].start - cut:.2f}s after it "
        f"(TTL {TTL:g}s)"
    )


async def test_a_paused_fleetd_s_at_most_once_unit_stops_before_it_runs_elsewhere(
    faults: Faults,
) -> None:
    """fleetd SIGSTOPped past its lease cannot fence: systemd's fence stops the unit."""
    once, victim, others = await _at_most_once_on_a_victim(faults)
    try:
        with Sampled(faults) as sampled:
            signal_fleetd(faults.sandbox, victim, "STOP")
            await _stopped_before_it_moved(faults, sampled, once, victim, others, "SIGSTOP")
    finally:
        signal_fleetd(faults.sandbox, victim, "CONT")


async def test_a_killed_fleetd_s_at_most_once_unit_stops_before_it_runs_elsewhere(
    faults: Faults,
) -> None:
    """fleetd SIGKILLed and not restarted: systemd's fence stops the unit."""
    once, victim, others = await _at_most_once_on_a_victim(faults)
    sandbox = faults.sandbox
    try:
        with Sampled(faults) as sampled:
            # SIGKILL, then cancel the restart systemd schedules for a second later
            signal_fleetd(sandbox, victim, "KILL")
            assert sandbox.exec(victim, "systemctl", "stop", FLEETD_UNIT).returncode == 0
            await _stopped_before_it_moved(faults, sampled, once, victim, others, "SIGKILL")
    finally:
        sandbox.exec(victim, "systemctl", "start", FLEETD_UNIT)
