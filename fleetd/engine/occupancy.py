"""Which unit is placed where during a scheduling pass, with the glob relations (pure)."""

from __future__ import annotations

from collections.abc import Container, Iterable

from fleetd.engine.globs import GlobRelation
from fleetd.requirements import Requirements


class Occupancy:
    """Units per machine and machines per unit, plus ``Conflicts=``/``Replaces=`` lookups.

    ``jobs``: the requirements of every unit the pass may place or see placed,
    so that the glob relations know all globs up front.  ``kept_conflicts`` (a
    scoped pass): the ``Conflicts=`` relation of every placement, kept across
    passes; units in ``skip`` (those the pass places or adds itself) are left
    out of it.
    """

    def __init__(
        self,
        jobs: Iterable[Requirements],
        kept_conflicts: GlobRelation | None = None,
        skip: Container[str] = (),
    ) -> None:
        conflicts: set[str] = set()
        replaces: set[str] = set()
        for req in jobs:
            conflicts.update(req.conflicts)
            replaces.update(req.replaces)
        self.where: dict[str, set[str]] = {}
        self.on: dict[str, set[str]] = {}
        self._conflicts = GlobRelation(sorted(conflicts))
        self._replaces = GlobRelation(sorted(replaces))
        self._kept = kept_conflicts if kept_conflicts else None
        self._skip = skip
        # The kept relation does not change during a pass: machines it forbids, by the
        # globs a unit declares and those matching its name (a conflict group's members
        # share them, and each would walk every machine of the group).
        self._kept_forbidden: dict[tuple[tuple[str, ...], tuple[str, ...]], set[str]] = {}

    def add(self, name: str, req: Requirements, machine: str) -> None:
        self.where.setdefault(name, set()).add(machine)
        self.on.setdefault(machine, set()).add(name)
        if self._conflicts:
            self._conflicts.add(name, req.conflicts, machine)
        if self._replaces:
            self._replaces.add(name, req.replaces, machine)

    def remove(self, name: str, req: Requirements, machine: str) -> None:
        machines = self.where.get(name)
        if machines is None or machine not in machines:
            return
        machines.discard(machine)
        if not machines:
            del self.where[name]
        self.on[machine].discard(name)
        if self._conflicts:
            self._conflicts.remove(name, req.conflicts, machine)
        if self._replaces:
            self._replaces.remove(name, req.replaces, machine)

    def linger(self, name: str, req: Requirements, machine: str) -> None:
        """``name`` still runs on ``machine``, which it leaves start-first (engine/handover.py):
        ``Conflicts=`` see it there until it stops, but it is not placed there."""
        if self._conflicts:
            self._conflicts.add(name, req.conflicts, machine)

    @property
    def has_globs(self) -> bool:
        return bool(self._conflicts) or bool(self._replaces) or self._kept is not None

    def signature(self, name: str) -> tuple[tuple[str, ...], ...]:
        """What other units' globs see of ``name``: units with equal signatures check alike."""
        kept = self._kept.globs_matching(name) if self._kept is not None else ()
        return (
            self._conflicts.globs_matching(name),
            self._replaces.globs_matching(name),
            kept,
        )

    def machines_of(self, name: str) -> set[str]:
        return self.where.get(name, set())

    def conflict(self, name: str, req: Requirements, machine: str) -> str | None:
        """Why ``name`` cannot join the units on ``machine`` (symmetric globs), or None."""
        kept = self._kept
        if req.conflicts:
            hits = self._conflicts.forward(req.conflicts, machine, name)
            if kept is not None:
                more = kept.forward(req.conflicts, machine, name, self._skip)
                hits = sorted({*hits, *more}) if hits else more
            if hits:
                return f"conflicts with {hits[0]}"
        if self._conflicts or kept is not None:
            other = self._conflicts.reverse(name, machine) if self._conflicts else None
            if kept is not None:
                first = kept.reverse(name, machine, self._skip)
                if first is not None and (other is None or first < other):
                    other = first
            if other is not None:
                return f"conflicts with {other}"
        if self._replaces:
            other = self._replaces.reverse(name, machine)
            if other is not None:
                return f"would be replaced by {other}"
        return None

    def forbidden(self, name: str, req: Requirements) -> set[str]:
        """Every machine where ``conflict`` would reject ``name`` (the unit is not placed yet)."""
        found = self._conflicts.machines(req.conflicts, name) if self._conflicts else set()
        kept = self._kept
        if kept is not None:
            key = (req.conflicts, kept.globs_matching(name))
            forbidden = self._kept_forbidden.get(key)
            if forbidden is None:
                forbidden = self._kept_forbidden[key] = kept.machines_by(*key, skip=self._skip)
            found |= forbidden
        if self._replaces:
            found |= self._replaces.machines((), name)
        return found

    def replaced_by(self, name: str, req: Requirements, machine: str) -> list[str]:
        """Units on ``machine`` that ``name`` replaces (``Replaces=``), sorted."""
        if not req.replaces:
            return []
        return self._replaces.forward(req.replaces, machine, name)
