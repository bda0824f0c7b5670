"""Disruption budgets: ``MaxUnavailable=`` of a group of units (pure).

A template's ``[X-Fleet] MaxUnavailable=N`` applies to its instances together
(their files are the template's): at most N of them may be down because of a
drain or a maintenance, counting those already down for any reason.  A plain
unit with the key is a group of its own.  A unit is *down* when it should run
(desired state ``launched``) and no machine reports it active and healthy
with its current file, or while it is being stopped to move (an
``AtMostOnce`` unit moves stop-first).

The engine consults a budget before each stop-first move off a draining
machine, and a maintenance before it takes a machine down with units that
could not leave it.  Start-first moves (engine/handover.py) take nothing
from a budget: the old copy runs until the new one is active and healthy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fleetd.errors import InvalidInput
from fleetd.model import DesiredState, Health, UnitState
from fleetd.requirements import Requirements
from fleetd.unitname import UnitName


def group_of(name: str) -> str:
    """The budget group of a unit: its template for an instance, else the unit itself."""
    try:
        return UnitName.parse(name).template or name
    except InvalidInput:
        return name


def is_up(state: UnitState | None, unit_hash: str) -> bool:
    """Active and healthy with the unit's current file."""
    return (
        state is not None
        and state.hash == unit_hash
        and state.active_state == "active"
        and state.health is Health.HEALTHY
    )


@dataclass(frozen=True, slots=True)
class Member:
    """A unit of a budgeted group as a budget sees it."""

    name: str
    hash: str
    desired: DesiredState
    requirements: Requirements
    machines: tuple[str, ...] = ()  # where it is scheduled


@dataclass(slots=True)
class Budget:
    """How many more units of each group may be taken down now (mutable: ``take``).

    ``limit``: the group's MaxUnavailable; ``down``: its units down now, sorted."""

    limit: dict[str, int] = field(default_factory=dict)
    down: dict[str, list[str]] = field(default_factory=dict)
    taken: dict[str, list[str]] = field(default_factory=dict)

    def left(self, name: str) -> int | None:
        """Units of ``name``'s group that may still be taken down (None: no limit)."""
        group = group_of(name)
        if group not in self.limit:
            return None
        used = len(self.down.get(group, ())) + len(self.taken.get(group, ()))
        return max(0, self.limit[group] - used)

    def take(self, name: str) -> bool:
        """Take ``name`` down if its group allows it (always true without a limit)."""
        left = self.left(name)
        if left is None:
            return True
        if left == 0:
            return False
        self.taken.setdefault(group_of(name), []).append(name)
        return True

    def give_back(self, name: str) -> None:
        """Undo a ``take`` of ``name`` (its move did not happen after all)."""
        taken = self.taken.get(group_of(name), [])
        if name in taken:
            taken.remove(name)

    def why(self, name: str) -> str:
        """Why ``name`` may not be taken down now (for a unit whose ``take`` failed)."""
        group = group_of(name)
        limit = self.limit.get(group, 0)
        down = [*self.down.get(group, ()), *self.taken.get(group, ())]
        shown = ", ".join(down[:5]) + (f" and {len(down) - 5} more" if len(down) > 5 else "")
        if not down:
            return f"{group} allows no unit down (MaxUnavailable={limit})"
        return (
            f"{group} allows {limit} unit(s) down (MaxUnavailable={limit}) "
            f"and {len(down)} are: {shown}"
        )


def budget(
    members: Iterable[Member],
    states: Mapping[tuple[str, str], UnitState],
    stopping: Iterable[str] = (),
) -> Budget:
    """The budget of every group with a MaxUnavailable among ``members``.

    ``states``: (unit, machine) -> what that machine reports (a member whose state
    is missing counts as down); ``stopping``: units being stopped to move (down)."""
    moving = set(stopping)
    result = Budget()
    for member in members:
        limit = member.requirements.max_unavailable
        if limit is None or member.desired is not DesiredState.LAUNCHED or "@." in member.name:
            continue
        group = group_of(member.name)
        result.limit[group] = min(limit, result.limit.get(group, limit))
        up = member.name not in moving and any(
            is_up(states.get((member.name, m)), member.hash) for m in member.machines
        )
        if not up:
            result.down.setdefault(group, []).append(member.name)
    for names in result.down.values():
        names.sort()
    return result
