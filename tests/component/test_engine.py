"""The engine over the in-memory registry with fake agents (tests/component/engine_harness.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleetd.config import Config
from fleetd.engine.engine import Engine, _Deposed, settings_from_config
from fleetd.engine.index import Strategy
from fleetd.engine.leader import Leadership
from fleetd.engine.plan import Action, Plan, Task
from fleetd.errors import LeaseExpired, NotLeader, RegistryUnavailable
from fleetd.model import DesiredState, MachineFlags, ScheduleEntry, UnitState
from tests.component.engine_harness import FakeAgent, G, Harness, harness, unit_text


async def test_leader_places_units_and_explains_the_rest() -> None:
    async with harness() as h:
        for mid in ("m1", "m2", "m3"):
            await h.machine(mid)
        for i in range(1, 6):
            await h.submit(f"web@{i}.service", unit_text(Conflicts="web@*"))
        engine = h.engine()
        h.start(engine)

        async def settled() -> bool:
            done = engine.metrics.reconciles_total > 0  # the pass that wrote them has finished
            return done and len(await h.where()) == 3 and len(await h.reasons()) == 2

        await h.wait_for(settled, "3 placed, 2 with reasons")
        where = await h.where()
        assert sorted(m for ms in where.values() for m in ms) == ["m1", "m2", "m3"]
        for text in (await h.reasons()).values():
            assert "conflicts with web@" in text
        assert engine.metrics.leader and engine.metrics.leader_changes_total == 1
        assert engine.metrics.placements_total == 3 and engine.metrics.unplaceable == 2

        # A new machine: one more unit fits, its reason is cleared; nothing else moves.
        await h.machine("m4")

        async def four() -> bool:
            return len(await h.where()) == 4 and len(await h.reasons()) == 1

        await h.wait_for(four, "a fourth unit placed on m4")
        assert {k: v for k, v in (await h.where()).items() if v != ["m4"]} == where


async def test_desired_state_changes_update_entries_and_inactive_unschedules() -> None:
    async with harness() as h:
        await h.machine("m1")
        await h.submit("a.service", desired=DesiredState.LOADED)
        h.start(h.engine())

        async def loaded() -> bool:
            entries = await h.store.list_schedule("m1")
            return [(e.name, e.desired) for e in entries] == [("a.service", DesiredState.LOADED)]

        await h.wait_for(loaded, "a loaded")
        await h.store.set_desired_state("a.service", DesiredState.LAUNCHED)

        async def launched() -> bool:
            entries = await h.store.list_schedule("m1")
            return [e.desired for e in entries] == [DesiredState.LAUNCHED]

        await h.wait_for(launched, "a launched")
        await h.store.set_desired_state("a.service", DesiredState.INACTIVE)

        async def gone() -> bool:
            return await h.where() == {}

        await h.wait_for(gone, "a unscheduled")


async def test_machine_loss_moves_units_at_once_and_at_most_once_after_grace() -> None:
    async with harness() as h:
        m1 = await h.machine("m1")
        await h.machine("m2", mem=2 * G)
        await h.submit("db.service", unit_text(MemoryReservation="4G"))
        await h.submit("web.service", unit_text(MemoryReservation="1G"))
        await h.submit("once.service", unit_text(AtMostOnce="true", MemoryReservation="512M"))
        await h.submit("side.service", unit_text(MachineOf="db.service"))
        engine = h.engine(at_most_once_grace=5.0, leader_ttl=60)
        h.start(engine)

        async def on_m1() -> bool:
            return await m1.units() == ["db.service", "once.service", "side.service", "web.service"]

        await h.wait_for(on_m1, "everything packed on m1")
        await m1.power_off()

        async def moved() -> bool:
            where = await h.where()
            return where.get("web.service") == ["m2"] and "db.service" not in where

        await h.wait_for(moved, "web moved to m2, db unplaceable")
        where = await h.where()
        assert where["once.service"] == ["m1"]  # waits for the grace period
        reasons = await h.reasons()
        assert "needs 4G memory, 1G free" in reasons["db.service"]
        assert reasons["side.service"] == "must run with db.service, which is not placed"
        assert "AtMostOnce" in reasons["once.service"]

        h.clock.advance(5.0)
        engine.trigger()

        async def once_moved() -> bool:
            return (await h.where()).get("once.service") == ["m2"]

        await h.wait_for(once_moved, "once moved after the grace")
        assert "once.service" not in await h.reasons()


async def test_drain_moves_units_off_in_batches_and_cordon_keeps_them() -> None:
    """AtMostOnce units: they move stop-first, in batches (others move start-first)."""
    async with harness() as h:
        await h.machine("m1")
        await h.machine("m2")
        await h.flag("m2", MachineFlags(unschedulable=True))
        for i in range(6):
            await h.submit(f"u{i}.service", unit_text(AtMostOnce="true"))
        engine = h.engine(drain_batch=2, drain_interval=0.0)
        # Unschedules per finished pass, taken from the pass's own plan: the metrics'
        # counters move at different moments of a pass (writes, then the report).
        per_pass: list[int] = []
        report = engine._report

        def counting(work: object, result: Plan, elapsed: float) -> None:
            per_pass.append(sum(1 for t in result.tasks if t.action is Action.UNSCHEDULE))
            report(work, result, elapsed)  # type: ignore[arg-type]

        engine._report = counting  # type: ignore[method-assign]
        h.start(engine)

        async def all_on_m1() -> bool:
            return len(await h.agents["m1"].units()) == 6

        await h.wait_for(all_on_m1, "all on m1 (m2 cordoned)")
        # Cordon m1 too: no new units anywhere, existing ones stay.
        await h.flag("m1", MachineFlags(unschedulable=True))
        await h.submit("late.service")

        async def late_unplaceable() -> bool:
            text = (await h.reasons()).get("late.service", "")
            return text == "m1: machine is unschedulable; m2: machine is unschedulable"

        await h.wait_for(late_unplaceable, "late unplaceable")
        assert len(await h.agents["m1"].units()) == 6

        # Drain m1 with room on m2: everything moves, at most two per pass.
        per_pass.clear()
        await h.flag("m2", MachineFlags())
        await h.flag("m1", MachineFlags(draining=True))

        async def drained() -> bool:
            if sum(per_pass) < 6:  # the pass that planned the last batch has finished
                return False
            return await h.agents["m1"].units() == [] and len(await h.where()) == 7

        await h.wait_for(drained, "m1 drained")
        assert sum(per_pass) == 6
        assert max(per_pass) == 2  # three batches of two


async def test_a_machine_whose_agent_lost_systemd_gets_no_new_units_until_it_is_back() -> None:
    a, b = "a" * 32, "b" * 32
    async with harness() as h:
        cut = await h.machine(a)
        await h.machine(b, mem=G)
        await h.submit("old.service")
        engine = h.engine()
        h.start(engine)

        async def placed(name: str, machine: str) -> bool:
            return (await h.where()).get(name) == [machine]

        await h.wait_for(lambda: placed("old.service", a), "old.service on a (best fit)")

        async def systemd(connected: bool) -> None:
            machine = replace(cut.machine, systemd_connected=connected)
            await h.store.register_machine(machine, cut.lease)

        await systemd(False)
        # Binpack would put it on a as well: the new one goes to b, the pinned one waits.
        await h.submit("new.service", unit_text(MemoryReservation="512M"))
        await h.submit("pinned.service", unit_text(MachineID=a[:8]))

        async def rejected() -> bool:
            reason = (await h.reasons()).get("pinned.service", "")
            return reason == f"pinned to machine {a[:8]}: {a}: agent cannot reach systemd"

        await h.wait_for(rejected, "pinned.service rejected with the reason")
        await h.wait_for(lambda: placed("new.service", b), "new.service on b")
        assert (await h.where())["old.service"] == [a]  # its running unit stays
        full = engine.metrics.full_reconciles_total
        await h.submit("other.service")  # a scoped pass sees it too
        await h.wait_for(lambda: placed("other.service", b), "other.service on b")
        assert engine.metrics.full_reconciles_total == full

        await systemd(True)
        await h.wait_for(lambda: placed("pinned.service", a), "pinned.service on a")
        assert await h.reasons() == {}
        assert (await h.where())["old.service"] == [a]


async def test_one_leader_and_failover_without_loss_or_duplicates() -> None:
    async with harness() as h:
        for mid in ("m1", "m2"):
            await h.machine(mid)
        for i in range(20):
            await h.submit(f"u{i}.service")
        tasks = {}
        for name in ("e1", "e2", "e3"):
            engine = h.engine(name)
            tasks[name] = h.start(engine)
        leader = await h.leader()
        # Followers hold no lease and write nothing.
        assert [e.leadership.lease == 0 for e in h.engines if e is not leader] == [True, True]

        async def placed() -> bool:
            return len(await h.where()) == 20

        await h.wait_for(placed, "all placed")
        before = await h.where()
        leader_task = tasks[leader.leadership.machine_id]
        await h.stop(leader_task)  # resigns: another takes over at once
        new = await h.leader()
        assert new is not leader
        await h.submit("u20.service")

        async def one_more() -> bool:
            return len(await h.where()) == 21

        await h.wait_for(one_more, "new leader places new work")
        after = await h.where()
        assert all(len(ms) == 1 for ms in after.values())
        assert {k: v for k, v in after.items() if k != "u20.service"} == before


async def test_a_paused_leader_cannot_write_after_being_replaced() -> None:
    async with harness() as h:
        await h.machine("m1")
        old = Leadership(h.store, "old", ttl=3, clock=h.clock)
        await old.tick()
        revision = old.revision
        assert revision is not None
        # "old" is paused (SIGSTOP): its lease runs out and another engine takes over.
        h.clock.advance(4)
        h.registry.expire_leases()
        new = Leadership(h.store, "new", ttl=3, clock=h.clock)
        await new.tick()
        assert new.revision is not None and new.revision != revision
        # "old" resumes and, not having noticed, tries to write: the fence refuses.
        entry = ScheduleEntry("m1", "x.service", "abc", DesiredState.LAUNCHED)
        with pytest.raises(NotLeader):
            await h.store.write_fenced([h.store.schedule_op(entry)], revision)
        assert await h.where() == {}


async def test_engine_that_lost_leadership_stops_and_writes_nothing() -> None:
    async with harness() as h:
        await h.machine("m1")
        engine = h.engine("old")
        await engine.leadership.tick()
        revision = engine.leadership.revision
        assert revision is not None
        h.clock.advance(4)
        h.registry.expire_leases()
        other = Leadership(h.store, "new", ttl=3, clock=h.clock)
        await other.tick()
        engine.leadership._refreshed_at = h.clock()  # the paused engine still believes it leads
        task = Task(
            Action.SCHEDULE,
            "x.service",
            "test",
            "m1",
            ScheduleEntry("m1", "x.service", "a", DesiredState.LAUNCHED),
        )
        with pytest.raises(_Deposed):
            await engine._apply((task,), revision)
        assert engine.metrics.fenced_writes_total == 1
        assert engine.leadership.revision is None and engine.leadership.leading() is None
        assert await h.where() == {}


async def test_leader_stops_acting_before_its_lease_can_expire() -> None:
    async with harness() as h:
        leadership = Leadership(h.store, "e1", ttl=3, clock=h.clock, margin=0.5)
        await leadership.tick()
        assert leadership.leading() is not None
        h.registry.set_available(False)
        h.clock.advance(2.4)
        assert leadership.leading() is not None
        h.clock.advance(0.2)  # 2.6 s after the last refresh was sent: within the margin
        assert leadership.leading() is None
        h.registry.set_available(True)


async def test_a_leader_lease_that_cannot_have_expired_yet_is_kept() -> None:
    """etcd answers "no such lease" to a refresh less than a TTL after the last one (a new
    etcd leader that has not applied the grant yet): the leader keeps its lease and key."""
    async with harness() as h:
        leadership = Leadership(h.store, "e1", ttl=3, clock=h.clock, margin=0.5)
        await leadership.tick()
        lease = leadership.lease
        refresh = h.registry.refresh_lease

        async def unknown(lease: int) -> int:
            raise LeaseExpired(f"lease {lease:x} does not exist (expired or revoked)")

        h.registry.refresh_lease = unknown  # type: ignore[method-assign]
        h.clock.advance(1.0)
        with pytest.raises(RegistryUnavailable, match="cannot have expired yet"):
            await leadership.tick()
        h.registry.refresh_lease = refresh  # type: ignore[method-assign]
        await leadership.tick()
        assert leadership.lease == lease and leadership.leading() is not None


def test_settings_follow_the_configuration() -> None:
    config = Config(
        agent_ttl=30.0,
        scheduler_strategy="spread",
        default_memory_reservation_bytes=G,
        engine_reconcile_interval=4.0,
    )
    settings = settings_from_config(config)
    assert settings.strategy is Strategy.SPREAD
    assert settings.defaults.memory_bytes == G and settings.defaults.cpu_millis == 0
    assert settings.leader_ttl == 10 and settings.at_most_once_grace == 5.0
    assert settings.interval == 4.0


async def test_specifiers_are_expanded_per_instance() -> None:
    async with harness() as h:
        await h.machine("m1", rack="1")
        await h.machine("m2", rack="2")
        text = unit_text(MachineMetadata="rack=%i")
        for i in (1, 2):
            await h.submit(f"web@{i}.service", text)
        await h.submit("plain1.service", unit_text(MemoryReservation="1G"))
        await h.submit("plain2.service", unit_text(MemoryReservation="1G"))
        engine = h.engine()
        h.start(engine)

        async def placed() -> bool:
            return len(await h.where()) == 4

        await h.wait_for(placed, "all four placed")
        where = await h.where()
        assert where["web@1.service"] == ["m1"] and where["web@2.service"] == ["m2"]
        # Same file, no specifiers: parsed once for both units.
        plain = await h.store.get_unit("plain1.service")
        assert plain is not None
        assert [k for k in engine._parsed if k[0] == plain.hash] == [(plain.hash, ".service")]
        assert engine._parsed[(plain.hash, ".service")][0].memory_bytes == G


async def test_at_most_once_unit_moves_only_after_its_old_machine_stopped_it() -> None:
    async with harness() as h:
        m1 = await h.machine("m1")
        await h.machine("m2")
        await h.flag("m2", MachineFlags(unschedulable=True))
        await h.submit("once.service", unit_text(AtMostOnce="true"))
        engine = h.engine(stop_poll=0.01)
        h.start(engine)

        async def on_m1() -> bool:
            return await m1.units() == ["once.service"]

        await h.wait_for(on_m1, "once on m1")
        running = UnitState("m1", "once.service", "h", "loaded", "active", "running")
        await h.store.put_states("m1", [running], m1.lease)
        await h.flag("m2", MachineFlags())
        await h.flag("m1", MachineFlags(draining=True))
        await _moves_to_m2_once_stopped_on_m1(h, engine, m1)


async def _moves_to_m2_once_stopped_on_m1(h: Harness, engine: Engine, m1: FakeAgent) -> None:
    """once.service leaves m1, where it runs: it is placed on m2 only once seen stopped."""

    async def waiting() -> bool:
        reason = (await h.reasons()).get("once.service", "")
        return reason == "AtMostOnce: waiting for it to stop on m1"

    await h.wait_for(waiting, "unscheduled from m1, waiting for it to stop")
    passes = engine.metrics.reconciles_total

    async def polled_twice() -> bool:
        return engine.metrics.reconciles_total >= passes + 2

    await h.wait_for(polled_twice, "two more passes while it still runs on m1")
    assert await h.where() == {}  # not started anywhere else meanwhile

    stopped = UnitState("m1", "once.service", "h", "loaded", "inactive", "dead")
    await h.store.put_states("m1", [stopped], m1.lease)

    async def moved() -> bool:
        return await h.where() == {"once.service": ["m2"]} and not await h.reasons()

    await h.wait_for(moved, "once placed on m2 once stopped on m1")


async def test_an_at_most_once_unit_moved_by_its_constraint_needs_no_full_pass() -> None:
    async with harness() as h:
        m1 = await h.machine("m1")
        await h.machine("m2")
        await h.submit("once.service", unit_text(AtMostOnce="true", MachineID="m1"))
        engine = h.engine(stop_poll=0.01, interval=1000.0)  # no safety pass in this test
        h.start(engine)

        async def on_m1() -> bool:
            return await m1.units() == ["once.service"] and engine.metrics.reconciles_total > 0

        await h.wait_for(on_m1, "once on m1")
        running = UnitState("m1", "once.service", "h", "loaded", "active", "running")
        await h.store.put_states("m1", [running], m1.lease)
        full = engine.metrics.full_reconciles_total
        await h.submit("once.service", unit_text(AtMostOnce="true", MachineID="m2"))
        await _moves_to_m2_once_stopped_on_m1(h, engine, m1)
        assert engine.metrics.full_reconciles_total == full, engine.last_full_reason  # scoped looks


async def test_a_mount_unit_is_checked_under_its_own_name() -> None:
    """Two mount units stored with one file (around the API, e.g. before an upgrade): only
    the one named after its Where= is placed; the engine parses each under its own name."""
    text = "[Mount]\nWhat=tmpfs\nWhere=/var/lib/x\n"
    async with harness() as h:
        await h.machine("m1")
        await h.submit("var-lib-x.mount", text)
        await h.submit("var-lib-y.mount", text)
        h.start(h.engine())

        async def settled() -> bool:
            return "var-lib-x.mount" in await h.where() and "var-lib-y.mount" in await h.reasons()

        await h.wait_for(settled, "var-lib-x.mount placed, var-lib-y.mount explained")
        assert "var-lib-y.mount" not in await h.where()
        reason = (await h.reasons())["var-lib-y.mount"]
        assert "systemd.mount(5)" in reason and "needs var-lib-x.mount" in reason
