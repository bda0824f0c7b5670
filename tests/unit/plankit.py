"""Helpers of the pure plan's tests: machines, snapshots, and the registry after a plan."""

from __future__ import annotations

import dataclasses

from fleetd.engine.plan import Action, ClusterSnapshot, Plan, UnitSpec
from fleetd.model import Capacity, Machine, ScheduleEntry

G = 1 << 30


def machines(*ids: str, mem: int = 8 * G) -> dict[str, Machine]:
    return {i: Machine(id=i, capacity=Capacity(4000, mem)) for i in ids}


def snap(
    units: list[UnitSpec], ms: dict[str, Machine], *entries: ScheduleEntry, **kw: object
) -> ClusterSnapshot:
    base = ClusterSnapshot(units={u.name: u for u in units}, machines=ms, schedule=list(entries))
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def actions(p: Plan) -> list[tuple[Action, str, str]]:
    return [(t.action, t.unit, t.machine) for t in p.tasks]


def apply(s: ClusterSnapshot, p: Plan) -> ClusterSnapshot:
    """What the registry holds after the engine applied ``p`` (as the engine does)."""
    schedule = {(e.machine, e.name): e for e in s.schedule}
    placements = dict(s.placements)
    for task in p.tasks:
        if task.action is Action.UNSCHEDULE:
            del schedule[(task.machine, task.unit)]
        elif task.action in (Action.SCHEDULE, Action.UPDATE):
            assert task.entry is not None
            schedule[(task.machine, task.unit)] = task.entry
        elif task.action is Action.RECORD:
            assert task.placement is not None
            placements[task.unit] = task.placement
        else:
            del placements[task.unit]
    return dataclasses.replace(s, schedule=list(schedule.values()), placements=placements)
