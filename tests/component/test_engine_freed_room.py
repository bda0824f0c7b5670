"""Room a pass frees after a waiting unit's turn goes to it at once (a follow-up scoped
pass, engine/scope.py), not at the next safety pass (tests/component/engine_harness.py)."""

from __future__ import annotations

from tests.component.engine_harness import G, Harness, harness, unit_text


async def _on(h: Harness, name: str) -> bool:
    return (await h.where()).get(name) == ["m1"]


async def test_room_freed_after_a_waiting_unit_s_turn_is_offered_to_it_at_once() -> None:
    async with harness() as h:
        await h.machine("m1", mem=3 * G)
        await h.submit("old.service", unit_text(MemoryReservation="2G"))
        # No safety pass during the test (the manual clock never makes one due either).
        engine = h.engine(interval=600.0, idle_interval=600.0)
        h.start(engine)
        await h.wait_for(lambda: _on(h, "old.service"), "old.service on m1")
        await h.submit("a.service", unit_text(MemoryReservation="2G"))

        async def waiting() -> bool:
            where, reasons = await h.where(), await h.reasons()
            return where == {"old.service": ["m1"]} and "a.service" in reasons

        await h.wait_for(waiting, "old.service on m1, a.service waiting for room")
        full = engine.metrics.full_reconciles_total
        # b.service fits in what is left and evicts old.service: 2G free on m1, but only
        # after a.service's turn in that pass (units are placed in name order).
        await h.submit("b.service", unit_text(MemoryReservation="1G", Replaces="old.service"))

        async def placed() -> bool:
            return await h.where() == {"a.service": ["m1"], "b.service": ["m1"]}

        await h.wait_for(placed, "a.service placed where old.service was", within=2.0)
        assert engine.metrics.full_reconciles_total == full
        reasons = await h.reasons()
        assert "a.service" not in reasons
        assert "replaced by b.service" in reasons["old.service"], reasons
