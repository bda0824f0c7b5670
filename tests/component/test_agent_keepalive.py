"""Keep-alive timing of the machine lease (TTL/2, quick retries) and fencing before expiry.

Time is injected: ``Presence`` gets a manual clock and a ``sleep`` that advances
it, so hours of lease life run in milliseconds; the registry (in memory) expires
leases by the same clock.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fleetd.agent.desired import ScheduleView
from fleetd.agent.fencing import Fence, default_margin
from fleetd.agent.presence import REFRESH_DIVISOR, KeepAliveTiming, Presence
from fleetd.errors import InvalidInput, LeaseExpired
from fleetd.model import Capacity, Machine
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store

KEYS = Keys()
MACHINE = Machine("b" * 32, "host-b", "10.0.0.2", (), Capacity(2000, 1 << 30))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Done(Exception):
    """Ends Presence.run from the fake sleep once the simulated time is up."""


@dataclass
class Sim:
    """Drives Presence.run on simulated time: each sleep advances the clock."""

    ttl: float
    tmp: Path
    until: float = 0.0  # simulated seconds to run
    clock: Clock = field(default_factory=Clock)
    registry: MemoryRegistry = field(init=False)
    presence: Presence = field(init=False)
    sent: list[float] = field(default_factory=list)  # when each refresh attempt began
    sleeps: list[tuple[float, float]] = field(default_factory=list)  # (at, seconds)
    down: list[tuple[float, float]] = field(default_factory=list)  # outages (from, to)
    checks: list[tuple[float, bool, bool]] = field(default_factory=list)  # (at, valid, alive)

    def __post_init__(self) -> None:
        self.registry = Recording(self, clock=self.clock)
        self.presence = Presence(
            store=Store(self.registry, KEYS),
            machine=MACHINE,
            ttl=self.ttl,
            lease_file=self.tmp / "lease",
            clock=self.clock,
            sleep=self.sleep,
        )
        self.start = self.clock.now

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append((self.clock.now, seconds))
        await self.observe_until(self.clock.now + seconds)
        if self.clock.now - self.start >= self.until:
            raise Done
        await asyncio.sleep(0)

    async def observe_until(self, end: float) -> None:
        """Advance the clock to ``end`` in small steps, recording fence validity and the lease."""
        margin = default_margin(self.ttl)
        while True:
            self.clock.now = min(end, self.clock.now + self.ttl / 100)
            up = not any(a <= self.clock.now < b for a, b in self.down)
            self.registry.set_available(up)
            self.registry.expire_leases()
            lease = self.presence.lease
            alive = lease != 0 and lease in self.registry._leases
            self.checks.append((self.clock.now, self.presence.valid_for(margin), alive))
            if self.clock.now >= end:
                return

    async def run(self) -> None:
        with pytest.raises(Done):
            await self.presence.run()


class Recording(MemoryRegistry):
    def __init__(self, sim: Sim, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.sim = sim

    async def refresh_lease(self, lease: int) -> int:
        self.sim.sent.append(self.sim.clock.now)
        return await super().refresh_lease(lease)


def test_timing_derives_from_the_ttl() -> None:
    assert REFRESH_DIVISOR == 2
    t = KeepAliveTiming.for_ttl(30.0)
    assert (t.interval, t.attempt_timeout, t.retry) == (15.0, 3.0, 1.0)
    t = KeepAliveTiming.for_ttl(10.0)
    assert (t.interval, t.attempt_timeout, t.retry) == (5.0, 1.0, 1.0)
    # After a success: one interval after the refresh was *sent*, however long it took.
    assert t.next_attempt(now=102.0, last_renewed=100.0, started=100.0, ok=True) == 3.0
    # After a failure: one retry after the failed attempt began; at once if it took longer.
    assert t.next_attempt(now=110.2, last_renewed=100.0, started=110.0, ok=False) == pytest.approx(
        0.8
    )
    assert t.next_attempt(now=111.5, last_renewed=100.0, started=110.0, ok=False) == 0.0


@pytest.mark.parametrize("ttl", [1.0, 2.0, 3.0, 5.0, 6.0, 10.0, 30.0, 120.0])
def test_default_fence_margin_leaves_room_for_retries_after_the_refresh(ttl: float) -> None:
    t = KeepAliveTiming.for_ttl(ttl)
    room = ttl - default_margin(ttl) - t.interval  # regular refresh due -> fence engages
    assert room >= ttl / 4
    # Two attempts can go unanswered (each abandoned after attempt_timeout, the next
    # sent at once) and a third starts; quick failures allow at least two retries.
    assert room >= 2 * t.attempt_timeout >= 2 * t.retry


async def test_steady_state_refreshes_every_half_ttl_and_never_fences(tmp_path: Path) -> None:
    sim = Sim(30.0, tmp_path, until=600.0)
    await sim.run()
    gaps = [b - a for a, b in itertools.pairwise(sim.sent)]
    assert len(sim.sent) >= 600 / 15 - 1
    assert gaps and all(g == pytest.approx(15.0) for g in gaps)
    assert all(valid and alive for _, valid, alive in sim.checks)


async def test_an_outage_at_the_refresh_is_retried_quickly_and_loses_nothing(
    tmp_path: Path,
) -> None:
    sim = Sim(30.0, tmp_path, until=120.0)
    first = sim.clock.now
    # etcd is unreachable from just before the second refresh for 8 s (of the 9 s left
    # before the fencing deadline).
    sim.down = [(first + 14.0, first + 22.0)]
    await sim.run()
    during = [s for s in sim.sent if first + 14.0 <= s < first + 22.0]
    assert len(during) >= 7  # tried every second
    after = [s for s in sim.sent if s >= first + 22.0]
    assert after and after[0] - (first + 22.0) <= 1.0
    assert all(valid and alive for _, valid, alive in sim.checks)
    kv = await sim.registry.get(KEYS.machine(MACHINE.id))
    assert kv is not None and kv.lease == sim.presence.lease


class Doubting(Recording):
    """Answers "no such lease" (etcd's keep-alive TTL 0) to refreshes during ``lies``, as a
    new etcd leader does for a lease whose grant it has not applied yet."""

    def __init__(self, sim: Sim, clock: Clock) -> None:
        super().__init__(sim, clock)
        self.lies: list[tuple[float, float]] = []
        self.grants = 0

    async def refresh_lease(self, lease: int) -> int:
        now = self.sim.clock.now
        if any(a <= now < b for a, b in self.lies):
            self.sim.sent.append(now)
            raise LeaseExpired(f"lease {lease:x} does not exist (expired or revoked)")
        return await super().refresh_lease(lease)

    async def grant_lease(self, ttl: int) -> int:
        self.grants += 1
        return await super().grant_lease(ttl)


async def test_a_lease_that_cannot_have_expired_yet_is_kept(tmp_path: Path) -> None:
    """etcd says the lease is gone although it was refreshed less than a TTL ago: the
    machine keeps refreshing it (a new lease would find machines/<id> held by the old one,
    left unrefreshed, and the machine would vanish for a while)."""
    sim = Sim(10.0, tmp_path, until=60.0)
    registry = Doubting(sim, sim.clock)
    sim.registry = registry
    sim.presence.store = Store(registry, KEYS)
    sim.presence.registry = registry
    first = sim.clock.now
    registry.lies = [(first + 4.0, first + 8.5)]  # the regular refresh at +5 and its retries
    await sim.run()
    assert registry.grants == 1  # only the first registration
    assert [s for s in sim.sent if first + 4.0 <= s < first + 8.5]  # it was told
    assert all(alive for _, _, alive in sim.checks)
    kv = await registry.get(KEYS.machine(MACHINE.id))
    assert kv is not None and kv.lease == sim.presence.lease


class Hanging(MemoryRegistry):
    """Refreshes hang (no answer, as from a black-holed etcd member) while ``hang`` is set;
    the hung time passes on the manual clock when the attempt is abandoned."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.clock = clock
        self.hang = False
        self.abandoned: list[float] = []

    async def refresh_lease(self, lease: int) -> int:
        if self.hang:
            self.hang = False
            began = self.clock.now
            try:
                await asyncio.Event().wait()
            finally:
                self.abandoned.append(began)
                self.clock.now = began + KeepAliveTiming.for_ttl(1.0).attempt_timeout
        return await super().refresh_lease(lease)


async def test_a_refresh_without_answer_is_abandoned_and_retried_at_once(tmp_path: Path) -> None:
    clock = Clock()
    registry = Hanging(clock)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds
        if len(slept) == 3:
            raise Done
        registry.hang = len(slept) == 1  # the first refresh after registering hangs
        await asyncio.sleep(0)

    p = Presence(
        store=Store(registry, KEYS),
        machine=MACHINE,
        ttl=1.0,  # attempts are abandoned after 0.1 s (real time: the timeout is real)
        lease_file=tmp_path / "lease",
        clock=clock,
        sleep=sleep,
    )
    with pytest.raises(Done):
        await p.run()
    timing = p.timing
    assert slept[0] == timing.interval  # registered, then the regular refresh
    assert len(registry.abandoned) == 1
    assert slept[1] == 0.0  # the abandoned attempt took longer than the retry pause
    assert p.last_renewed == pytest.approx(registry.abandoned[0] + timing.attempt_timeout)
    assert p.valid_for(default_margin(1.0))


async def test_fence_engages_before_the_lease_can_expire(tmp_path: Path) -> None:
    sim = Sim(10.0, tmp_path, until=60.0)
    sim.down = [(sim.clock.now + 20.0, sim.clock.now + 1000.0)]  # partitioned for good
    fence = Fence(
        presence=sim.presence,
        schedule=ScheduleView(Store(sim.registry, KEYS), MACHINE.id, on_change=lambda: None),
        margin=default_margin(10.0),
        on_change=lambda: None,
    )
    fenced_at: list[float] = []
    lease_gone_at: list[float] = []
    observe = sim.observe_until

    async def observe_and_fence(end: float) -> None:
        while sim.clock.now < end:
            await observe(min(end, sim.clock.now + 0.05))
            await fence.check()
            if fence.fenced and not fenced_at:
                fenced_at.append(sim.clock.now)
            if not sim.checks[-1][2] and not lease_gone_at:
                lease_gone_at.append(sim.clock.now)

    sim.observe_until = observe_and_fence  # type: ignore[method-assign]
    await sim.run()
    renewed = sim.presence.last_renewed  # the last refresh before the partition
    assert renewed < sim.down[0][0]
    assert fenced_at and lease_gone_at
    assert fenced_at[0] == pytest.approx(renewed + 10.0 - default_margin(10.0), abs=0.06)
    assert lease_gone_at[0] - fenced_at[0] >= default_margin(10.0) - 0.06


def test_a_margin_that_would_fence_a_healthy_machine_is_refused(tmp_path: Path) -> None:
    registry = MemoryRegistry()
    p = Presence(
        store=Store(registry, KEYS),
        machine=MACHINE,
        ttl=10.0,
        lease_file=tmp_path / "l",
        clock=Clock(),
    )
    view = ScheduleView(Store(registry, KEYS), MACHINE.id, on_change=lambda: None)
    with pytest.raises(InvalidInput, match="fencing margin must be above 0 and below 5s"):
        Fence(presence=p, schedule=view, margin=5.0, on_change=lambda: None)
    Fence(presence=p, schedule=view, margin=4.9, on_change=lambda: None)
