"""When the engine runs full passes: timers, the budgeted safety pass, and a settled model.

The engine's clock is the harness's manual clock: a due time is reached by
advancing it and calling ``trigger()``, never by sleeping.
"""

from __future__ import annotations

import logging

import pytest

from fleetd.engine.changes import Cause, FullReason
from fleetd.engine.engine import Engine
from fleetd.model import DesiredState, MachineFlags, ScheduleEntry
from tests.component.engine_harness import Harness, harness, unit_text


def test_the_safety_pass_is_stretched_to_its_budget_and_timers_come_first() -> None:
    engine = Harness().engine(interval=2.0, safety_budget=0.01, idle_interval=600.0)
    cadence, now = engine.cadence, engine.clock()
    assert cadence.wait(now) == 0.0  # no full pass yet
    assert cadence.due(now) == FullReason(Cause.SAFETY, "no full pass yet")
    cadence.full_at, cadence.full_seconds = now, 0.005
    cadence.changed()  # something changed since
    assert cadence.wait(now) == pytest.approx(2.0)  # cheap: every interval
    assert cadence.due(now) is None
    assert cadence.due(now + 2.0) == FullReason(Cause.SAFETY, "safety pass")
    cadence.full_seconds = 0.5
    assert cadence.wait(now) == pytest.approx(50.0)  # 0.5 s is 1% of 50 s
    cadence.settled = 1  # that pass found nothing to do and nothing changed since
    assert cadence.wait(now) == pytest.approx(600.0)
    assert cadence.due(now + 600.0) == FullReason(Cause.SAFETY, "insurance pass of a settled model")
    cadence.poll_at = now + 0.5  # a stopping AtMostOnce unit to look at: a scoped pass
    assert cadence.wait(now) == pytest.approx(0.5) and cadence.polls_first()
    cadence.poll_at = None
    cadence.grace_at = now + 0.7  # a held AtMostOnce unit's grace ends: a scoped pass
    assert cadence.wait(now) == pytest.approx(0.7) and cadence.polls_first()
    cadence.grace_at = None
    cadence.wake_at = now + 3.0  # the mass-loss guard ends then: a full pass
    assert cadence.wait(now) == pytest.approx(3.0) and not cadence.polls_first()
    cadence.look_at = now + 0.2  # a start-first move to look at: a scoped pass
    assert cadence.wait(now) == pytest.approx(0.2) and cadence.polls_first()
    cadence.look_at = None
    cadence.drain_due = now + 1.0  # the next drain batch: a scoped pass
    assert cadence.wait(now) == pytest.approx(1.0) and cadence.polls_first()
    assert cadence.drain_batch(now) == 0  # not yet
    cadence.drain_due = now - 1.0  # overdue
    assert cadence.wait(now) == 0.0
    assert cadence.due(now) is None
    assert cadence.drain_batch(now) == engine.settings.drain_batch
    assert cadence.due(now + 3.0) == FullReason(Cause.TIMER, "the mass-loss guard ends")


async def _settled(h: Harness, engine: Engine) -> None:
    async def quiet() -> bool:
        return engine.cadence.is_settled and engine.cadence.wait(engine.clock()) > 100

    await h.wait_for(quiet, "a full pass that found nothing to do")


async def test_a_settled_model_gets_no_safety_pass_until_something_changes() -> None:
    async with harness() as h:
        await h.machine("m1")
        await h.machine("m2")
        await h.submit("a.service")
        # The default budget (0.01) puts the next safety pass 100 times a full pass's real
        # duration away: seconds on a loaded host, past wait_for's deadline.
        engine = h.engine(interval=0.01, safety_budget=1.0, idle_interval=600.0)
        h.start(engine)

        async def placed() -> bool:
            return len(await h.where()) == 1

        await h.wait_for(placed, "a placed")
        await _settled(h, engine)  # the pass after the placing one found nothing
        full = engine.metrics.full_reconciles_total
        passes = engine.metrics.reconciles_total

        # A wake-up with no timer due is an incremental pass (of nothing), not a full one.
        engine.trigger()

        async def one_more() -> bool:
            return engine.metrics.reconciles_total > passes

        await h.wait_for(one_more, "the triggered pass")
        assert engine.metrics.full_reconciles_total == full
        assert engine.cadence.wait(engine.clock()) == pytest.approx(600.0)

        # A change: an incremental pass places it, then the safety pass (due after
        # `interval`) looks at everything once and the model is settled again.
        await h.submit("b.service")

        async def both() -> bool:
            return len(await h.where()) == 2 and engine.metrics.full_reconciles_total > full

        await h.wait_for(both, "b placed and a safety pass after it")
        await _settled(h, engine)

        # The insurance pass: idle_interval after the last full pass, even when settled.
        full = engine.metrics.full_reconciles_total
        h.clock.advance(600.0)
        engine.trigger()

        async def insured() -> bool:
            return engine.metrics.full_reconciles_total > full

        await h.wait_for(insured, "a full pass idle_interval after the last one")


async def test_the_engines_own_writes_coming_back_cost_no_extra_pass() -> None:
    async with harness() as h:
        one, two = "1" * 32, "2" * 32
        await h.machine(one)
        await h.machine(two)
        await h.submit("a.service")
        engine = h.engine(interval=1000.0)  # no safety pass in this test
        h.start(engine)

        async def caught_up() -> bool:
            """Every watch event consumed and applied, no pass pending."""
            delivered = all(w.queue.empty() for w in h.registry._watchers)
            return delivered and not engine._model_lock.locked() and not engine._dirty.is_set()

        async def placed() -> bool:
            return len(await h.where()) == 1 and await caught_up()

        await h.wait_for(placed, "a placed")
        old = (await h.where())["a.service"][0]
        new = two if old == one else one
        changes, full = engine.cadence.changes, engine.metrics.full_reconciles_total
        passes = engine.metrics.reconciles_total
        # A constraint change of a placed unit: one scoped pass moves it (a delete, a put).
        await h.submit("a.service", unit_text(MachineID=new))

        async def moved() -> bool:
            return await h.where() == {"a.service": [new]} and await caught_up()

        await h.wait_for(moved, f"a moved to {new}")
        assert engine.metrics.full_reconciles_total == full
        assert engine.metrics.reconciles_total - passes == 1
        assert engine.cadence.changes - changes == 2  # the unit, the pass's writes; not echoes


async def test_every_full_pass_says_why_it_ran(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fleetd.engine.engine")
    async with harness() as h:
        await h.machine("m1")
        await h.submit("a.service")
        engine = h.engine(interval=1000.0)  # no safety pass in this test
        h.start(engine)

        async def placed() -> bool:  # and the pass that placed it recorded
            return len(await h.where()) == 1 and engine.metrics.reconciles_total > 0

        await h.wait_for(placed, "a placed")
        assert engine.last_full_reason == FullReason(Cause.LOADED, "first pass")

        async def full_pass(after: int) -> None:
            async def ran() -> bool:
                return engine.metrics.full_reconciles_total > after

            await h.wait_for(ran, "a full pass")

        # Changes a scoped pass does not handle force a full pass, which names them.
        entry = ScheduleEntry("m2", "b.service", "h", DesiredState.LAUNCHED)  # not the engine's
        full = engine.metrics.full_reconciles_total
        await h.registry.batch([h.store.schedule_op(entry)])
        await full_pass(full)
        reason = FullReason(Cause.FOREIGN_WRITE, "schedule entry of b.service on m2")
        assert engine.last_full_reason == reason
        assert f"(full, {reason}): " in caplog.text

        # A unit submitted needs no full pass: it is planned alone; nor does a machine
        # that joins, one cordoned or one drained.
        full, passes = engine.metrics.full_reconciles_total, engine.metrics.reconciles_total
        await h.submit("c.service")

        async def c_placed() -> bool:
            return "c.service" in await h.where() and engine.metrics.reconciles_total > passes

        await h.wait_for(c_placed, "c placed")
        assert engine.metrics.full_reconciles_total == full
        assert "(scoped, units: 1): 1 tasks" in caplog.text
        for change in (
            h.machine("m3"),
            h.flag("m3", MachineFlags(unschedulable=True)),
            h.flag("m1", MachineFlags(unschedulable=True, draining=True)),
            h.flag("m1", MachineFlags()),
        ):
            passes = engine.metrics.reconciles_total
            await change

            async def passed(after: int = passes) -> bool:
                return engine.metrics.reconciles_total > after

            await h.wait_for(passed, "a pass")
            assert engine.metrics.full_reconciles_total == full
