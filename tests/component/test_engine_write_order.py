"""The engine's writes: every unschedule of a pass commits before any schedule.

A unit that moves must never have two schedule entries at once, also when a
pass is written in several transactions in flight together.  The registry here
holds back every transaction that deletes, as a slow etcd round trip would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from engine_harness import harness

from fleetd.engine.plan import Action, Task
from fleetd.model import DesiredState, ScheduleEntry
from fleetd.registry.base import Compare, Delete, Op, TxnResult

MOVES = 300  # more than two transactions' worth of unschedules and of schedules


async def test_every_unschedule_commits_before_any_schedule() -> None:
    async with harness() as h:
        for machine in ("m1", "m2"):
            await h.machine(machine)
        engine = h.engine("e1")
        await engine.leadership.tick()
        revision = engine.leadership.revision
        assert revision is not None
        for i in range(MOVES):
            entry = ScheduleEntry("m1", f"u{i}.service", "a" * 40, DesiredState.LAUNCHED)
            put = h.store.schedule_op(entry)
            await h.registry.put(put.key, put.value)

        committed: list[tuple[int, bool]] = []  # (revision, the transaction deleted)
        txn = h.registry.txn

        async def slow_deletes(
            compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
        ) -> TxnResult:
            deletes = any(isinstance(op, Delete) for op in success)
            if deletes:
                await asyncio.sleep(0.02)
            result = await txn(compares, success, failure)
            committed.append((result.revision, deletes))
            return result

        h.registry.txn = slow_deletes  # type: ignore[method-assign]
        moves = [Task(Action.UNSCHEDULE, f"u{i}.service", "moved", "m1") for i in range(MOVES)]
        for i in range(MOVES):
            name = f"u{i}.service"
            entry = ScheduleEntry("m2", name, "a" * 40, DesiredState.LAUNCHED)
            moves.append(Task(Action.SCHEDULE, name, "placed", "m2", entry))
        await engine._apply(tuple(moves), revision)

        order = [deleted for _, deleted in sorted(committed)]
        assert order == sorted(order, reverse=True), "a schedule committed before an unschedule"
        assert await h.where() == {f"u{i}.service": ["m2"] for i in range(MOVES)}
