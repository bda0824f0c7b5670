"""Start-first moves: a unit scheduled on two machines while it moves (pure).

A unit that leaves a draining machine (or is asked to move, e.g. back to a
machine after its maintenance) and is not ``AtMostOnce`` moves start-first:
the engine schedules it on its new machine and keeps the entry on the old
one; the new entry names the old machine (``ScheduleEntry.moving_from``).
Once the new machine reports the unit active and healthy with its current
file (``budget.is_up``), the engine removes the old entry and rewrites the new
one without the mark, in one pass (the delete commits first).  So the
service never stops: for a moment both copies run.

Everything needed is in the schedule: a new leader finds the moves in flight
in the entries it reads.  A mark whose old entry is gone is stale (the move
finished, or the old machine's entry was removed otherwise) and is cleared.

While a move is in flight the scheduler sees the unit only on its new
machine, with the room of its old copy still taken on the old one; it does
not move the unit off its new machine for a drain or a move request until the
move finished.  If the new entry goes (its machine is lost, or a constraint
now forbids it), the move is retargeted: the old copy keeps running until
the unit's next machine reports it up.

A move has a deadline, ``start_first_timeout`` (fleet.conf; counted from its
placement reason's ``since``, so a new leader keeps it): past it the reason
says so and a maintenance draining the old machine stops there
(fleetd/maintenance/plan.py); the move itself goes on, the old copy keeps
running until the new one is up.

``AtMostOnce`` units never move start-first (they would run twice): they stop
first and start elsewhere after (engine/plan.py, ``STOPPING``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fleetd.engine.budget import is_up
from fleetd.model import DesiredState, Placement, ScheduleEntry, UnitState

MOVING = "moving from "
"""Placement reason of a unit in a start-first move, followed by
``<old> to <new>: ...``."""


@dataclass(frozen=True, slots=True)
class Handover:
    """A start-first move in flight: ``unit`` runs on ``old`` until it is up on ``new``."""

    unit: str
    old: str
    new: str


def in_flight(
    entries: Mapping[str, ScheduleEntry], machines: Mapping[str, object]
) -> Handover | None:
    """The move in flight among one unit's entries (machine -> entry), if any: a marked
    entry on a live machine whose old entry still exists."""
    for machine in sorted(entries):
        entry = entries[machine]
        old = entry.moving_from
        if old and old != machine and old in entries and machine in machines:
            return Handover(entry.name, old, machine)
    return None


def finished(
    handover: Handover, desired: DesiredState, unit_hash: str, state: UnitState | None
) -> bool:
    """Whether the old copy may go: the new one is up (a unit that should only be
    loaded, not started, moves without waiting)."""
    return desired is not DesiredState.LAUNCHED or is_up(state, unit_hash)


def move_of(summary: str) -> str:
    """``moving from <old> to <new>`` of a move's placement reason ("" for another
    reason): a reason whose move changes starts its ``since`` (the deadline) again."""
    return summary.partition(":")[0] if summary.startswith(MOVING) else ""


def late(handover: Handover, placement: Placement | None, now: float, timeout: float) -> bool:
    """Whether ``handover``, whose unit's placement reason is ``placement``, is past its
    deadline (``timeout`` seconds; 0: none); ``now``: wall seconds."""
    return (
        timeout > 0
        and placement is not None
        and move_of(placement.summary) == _move(handover)
        and now - placement.since >= timeout
    )


def _move(handover: Handover) -> str:
    return f"{MOVING}{handover.old} to {handover.new}"


def waiting_reason(handover: Handover, state: UnitState | None, timeout: float = 0.0) -> str:
    """The placement reason of a move in flight: stable while nothing is wrong (a write
    per change), with what is wrong when the new copy failed or is unhealthy, and
    once it is past its deadline (``timeout``: the deadline it passed, else 0)."""
    text = (
        f"{_move(handover)}: it runs on {handover.old} until it is active and healthy on "
        f"{handover.new}"
    )
    if state is not None and state.active_state == "failed":
        text = f"{text} (it failed there: {state.sub_state})"
    elif state is not None and state.active_state == "active" and state.health_message:
        text = f"{text} (health check there: {state.health_message})"
    if timeout > 0:
        text += (
            f"; not up there within {timeout:.0f}s (start_first_timeout): a maintenance "
            f"draining {handover.old} stops"
        )
    return text
