"""Where a machine's drain stands, from the engine's model and what the machine reports
(pure): what is left to move, and whether taking the machine down now would take a
group of units over its disruption budget (fleetd/engine/budget.py).

Left to move: units still scheduled there (but Global units, which stay, and units
that cannot leave it: the engine found no other machine for them), the old copies
of start-first moves from it (they stop once their new copy is up), ``AtMostOnce``
units taken off it and not yet seen stopped, and units no longer scheduled there that
it still runs.  A reboot waits for those too: its agent stops them while the drain goes
on, and a machine reboots faster with nothing left for its shutdown to stop
(benchmarks/maintenance.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fleetd.engine.budget import Budget, Member, budget
from fleetd.engine.handover import Handover, late
from fleetd.engine.plan import UnitSpec
from fleetd.maintenance.plan import Drain
from fleetd.model import Placement, UnitState

STUCK = "cannot leave draining machine"
"""How the engine's placement reason of a unit that cannot leave its draining machine
begins (fleetd/engine/placer.py)."""
RUNNING = frozenset({"active", "activating", "deactivating", "reloading"})


def movable(machine: str, units: Mapping[str, UnitSpec], on: Iterable[str]) -> tuple[str, ...]:
    """The units of ``on`` (scheduled on ``machine``) that a drain may move: not Global."""
    del machine
    return tuple(
        sorted(u for u in on if (spec := units.get(u)) is None or not spec.requirements.global_)
    )


def drain_status(
    machine: str,
    *,
    units: Mapping[str, UnitSpec],
    on: Iterable[str],
    placements: Mapping[str, Placement],
    stopping: Mapping[str, str],
    marked: Mapping[tuple[str, str], str],
    states: Iterable[UnitState],
    budgets: Budget | None = None,
    now: float = 0.0,
    move_timeout: float = 0.0,
) -> Drain:
    """``on``: units scheduled on ``machine``; ``marked``: (machine, unit) -> old machine
    of start-first moves; ``states``: what ``machine`` reports; ``budgets``: the
    disruption budgets as they stand (None: no unit there has one); ``move_timeout``:
    the deadline of a start-first move from it (engine/handover.py), at ``now`` (wall
    seconds)."""
    left: list[str] = []
    why: dict[str, str] = {}
    stuck: list[str] = []
    overdue = ""
    here = set(on)
    going = {unit: new for (new, unit), old in marked.items() if old == machine}
    for unit in sorted(here):
        spec = units.get(unit)
        if spec is not None and spec.requirements.global_:
            continue
        placement = placements.get(unit)
        summary = placement.summary if placement is not None else ""
        if summary.startswith(STUCK):
            stuck.append(unit)
            continue
        left.append(unit)
        if unit in going:
            why[unit] = f"moving to {going[unit]}"
            move = Handover(unit, machine, going[unit])
            if not overdue and late(move, placement, now, move_timeout):
                overdue = (
                    f"{unit} was not active and healthy on {going[unit]} within "
                    f"{move_timeout:.0f}s (start_first_timeout); its copy on {machine} "
                    "keeps running"
                )
        elif summary:
            why[unit] = summary
    for unit, old in sorted(stopping.items()):
        if old == machine and unit not in here:
            left.append(unit)
            why[unit] = "stopping"
    for state in states:
        spec = units.get(state.name)
        if state.name in here or state.active_state not in RUNNING:
            continue
        if spec is not None and spec.requirements.global_:
            continue
        if state.name not in why:
            left.append(state.name)
            why[state.name] = "still running there"
    blocked = ""
    if not left and stuck and budgets is not None:
        for unit in stuck:
            if not budgets.take(unit):
                blocked = (
                    f"taking {machine} down would take {unit} down (it cannot leave): "
                    f"{budgets.why(unit)}"
                )
                break
    return Drain(tuple(dict.fromkeys(left)), why, blocked, overdue)


def budgets_of(
    units: Mapping[str, UnitSpec],
    schedule: Iterable[tuple[str, str]],
    states: Mapping[tuple[str, str], UnitState],
    stopping: Iterable[str],
) -> Budget:
    """The disruption budgets of every group with a ``MaxUnavailable=``; ``schedule``:
    (machine, unit) pairs, ``states``: (unit, machine) -> state."""
    where: dict[str, list[str]] = {}
    for machine, unit in schedule:
        where.setdefault(unit, []).append(machine)
    members = [
        Member(name, spec.hash, spec.desired, spec.requirements, tuple(where.get(name, ())))
        for name, spec in units.items()
        if spec.requirements.max_unavailable is not None and not spec.error
    ]
    return budget(members, states, stopping)
