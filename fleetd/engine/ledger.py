"""What the engine keeps about every unit and placement between passes (pure).

The ``Ledger`` is updated from each model change (a unit's spec, a schedule
entry) so that a scoped pass (engine/scope.py) finds at once which units a
change touches and what everything else occupies: machines per unit, units
and load per machine, MachineOf followers, ``Conflicts=`` partners, and
where the placements of jobs are by the globs they match or declare.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from fleetd.constraints import is_glob
from fleetd.engine.budget import group_of
from fleetd.engine.globs import GlobRelation, GlobSet
from fleetd.engine.plan import UnitSpec
from fleetd.engine.slot import Conditions
from fleetd.model import DesiredState


def is_job(spec: UnitSpec | None) -> bool:
    """Whether a full pass plans this unit (so its schedule entries take room)."""
    return (
        spec is not None
        and spec.desired is not DesiredState.INACTIVE
        and not spec.error
        and "@." not in spec.name
    )


class Ledger:
    """Per-unit and per-machine facts kept up to date from model changes (mutable)."""

    def __init__(self) -> None:
        self.machines_of: dict[str, set[str]] = {}
        self.units_on: dict[str, set[str]] = {}
        self.load: dict[str, list[int]] = {}
        # (machine, unit) -> cpu, mem and Conflicts= globs of a placement of a job
        self._counted: dict[tuple[str, str], tuple[int, int, tuple[str, ...]]] = {}
        # Where placements of jobs are, by the Conflicts= globs they match or declare.
        self.conflicts = GlobRelation(())
        self.followers: dict[str, set[str]] = {}
        self.globals: set[str] = set()
        self.replacing: set[str] = set()
        # Disruption budget group (MaxUnavailable=, engine/budget.py) -> its units.
        self.budgeted: dict[str, set[str]] = {}
        self._replace_globs = GlobSet()
        # Replaces= glob -> the units that declare it, and the names it matches.
        self._replacers: dict[str, set[str]] = {}
        self._replaced: dict[str, set[str]] = {}
        self._globs = GlobSet()
        self._declares: dict[str, set[str]] = {}
        self._matches: dict[str, set[str]] = {}
        self._names: set[str] = set()
        self.conditions: dict[Conditions, int] = {}  # metadata condition set -> units
        # Reservations of jobs -> how many jobs have them (for ``floor``).
        self._cpus: dict[int, int] = {}
        self._mems: dict[int, int] = {}

    @classmethod
    def build(cls, units: Mapping[str, UnitSpec], entries: Iterable[tuple[str, str]]) -> Ledger:
        ledger = cls()
        for name, spec in units.items():
            ledger.set_unit(name, None, spec)
        for machine, unit in entries:
            ledger.set_entry(machine, unit, units.get(unit), present=True)
        return ledger

    # --- updates ---

    def set_unit(self, name: str, old: UnitSpec | None, new: UnitSpec | None) -> None:
        """``name``'s spec changed from ``old`` to ``new`` (None: absent)."""
        if is_job(old):
            assert old is not None
            _count(self._cpus, old.requirements.cpu_millis, -1)
            _count(self._mems, old.requirements.memory_bytes, -1)
        if is_job(new):
            assert new is not None
            _count(self._cpus, new.requirements.cpu_millis, 1)
            _count(self._mems, new.requirements.memory_bytes, 1)
        if old is not None:
            req = old.requirements
            left = self.conditions[req.metadata] - 1
            if left:
                self.conditions[req.metadata] = left
            else:
                del self.conditions[req.metadata]
            for peer in req.machine_of:
                self.followers.get(peer, set()).discard(name)
            for glob in req.conflicts:
                self._declares.get(glob, set()).discard(name)
            self.globals.discard(name)
            self.replacing.discard(name)
            if req.max_unavailable is not None:
                _discard(self.budgeted, group_of(name), name)
            for glob in req.replaces:
                self._replacers.get(glob, set()).discard(name)
        if new is None:
            self._names.discard(name)
            for glob in self._globs.matching(name):
                self._matches[glob].discard(name)
            for glob in self._replace_globs.matching(name):
                self._replaced[glob].discard(name)
        else:
            req = new.requirements
            self.conditions[req.metadata] = self.conditions.get(req.metadata, 0) + 1
            if name not in self._names:
                self._names.add(name)
                for glob in self._globs.matching(name):
                    self._matches[glob].add(name)
                for glob in self._replace_globs.matching(name):
                    self._replaced[glob].add(name)
            for peer in req.machine_of:
                self.followers.setdefault(peer, set()).add(name)
            for glob in req.conflicts:
                self._add_glob(glob)
                self._declares[glob].add(name)
            if req.global_:
                self.globals.add(name)
            if req.max_unavailable is not None:
                self.budgeted.setdefault(group_of(name), set()).add(name)
            if req.replaces:
                self.replacing.add(name)
                for glob in req.replaces:
                    self._add_replace_glob(glob)
                    self._replacers[glob].add(name)
        for machine in self.machines_of.get(name, ()):
            self._recount(machine, name, new)

    def set_entry(self, machine: str, unit: str, spec: UnitSpec | None, present: bool) -> None:
        """The schedule entry (machine, unit) appeared or disappeared."""
        if present:
            self.machines_of.setdefault(unit, set()).add(machine)
            self.units_on.setdefault(machine, set()).add(unit)
        else:
            _discard(self.machines_of, unit, machine)
            _discard(self.units_on, machine, unit)
        self._recount(machine, unit, spec if present else None)

    def _recount(self, machine: str, unit: str, spec: UnitSpec | None) -> None:
        if is_job(spec):
            assert spec is not None
            req = spec.requirements
            if self._counted.get((machine, unit)) == (
                req.cpu_millis,
                req.memory_bytes,
                req.conflicts,
            ):
                return  # counted as it is (a new version, new metadata conditions)
        old = self._counted.pop((machine, unit), None)
        load = self.load.setdefault(machine, [0, 0, 0])
        if old is not None:
            load[0] -= old[0]
            load[1] -= old[1]
            load[2] -= 1
            self.conflicts.remove(unit, old[2], machine)
        if is_job(spec):
            assert spec is not None
            req = spec.requirements
            new = (req.cpu_millis, req.memory_bytes, req.conflicts)
            self._counted[(machine, unit)] = new
            load[0] += new[0]
            load[1] += new[1]
            load[2] += 1
            self.conflicts.add(unit, req.conflicts, machine)
        if load == [0, 0, 0]:
            del self.load[machine]

    def _add_glob(self, glob: str) -> None:
        if glob in self._declares:
            return
        self._declares[glob] = set()
        self._globs.add(glob)
        self._matches[glob] = self._named(glob)
        placements = [
            (n, m)
            for n in self._matches[glob]
            for m in self.machines_of.get(n, ())
            if (m, n) in self._counted
        ]
        self.conflicts.add_glob(glob, placements)

    def _add_replace_glob(self, glob: str) -> None:
        if glob in self._replacers:
            return
        self._replacers[glob] = set()
        self._replace_globs.add(glob)
        self._replaced[glob] = self._named(glob)

    def _named(self, glob: str) -> set[str]:
        """The names ``glob`` matches: a plain name itself, else one scan of the names
        (a new glob is rare: a new conflict group)."""
        if not is_glob(glob):
            return {glob} if glob in self._names else set()
        probe = GlobSet((glob,))
        return {n for n in self._names if probe.matching(n)}

    # --- queries ---

    @property
    def floor(self) -> tuple[int, int]:
        """The smallest (cpu, mem) any job reserves, as a full pass computes it (plan.py)."""
        return (min(self._cpus, default=0), min(self._mems, default=0))

    def counted(self, machine: str, unit: str) -> tuple[int, int, tuple[str, ...]] | None:
        """(cpu, mem, Conflicts= globs) of a placement of a job, else None."""
        return self._counted.get((machine, unit))

    def related(self, name: str, spec: UnitSpec | None) -> set[str]:
        """Units ``name`` conflicts with by glob, either way (Conflicts= is symmetric)."""
        found: set[str] = set()
        if spec is not None:
            for glob in spec.requirements.conflicts:
                found |= self._matches.get(glob, set())
        for glob in self._globs.matching(name):
            found |= self._declares[glob]
        found.discard(name)
        return found

    def related_among(
        self, name: str, spec: UnitSpec | None, candidates: Collection[str]
    ) -> list[str]:
        """``related(name, spec) & candidates``, walking whichever is smaller (a conflict
        group may have thousands of members, the candidates a few)."""
        declared = spec.requirements.conflicts if spec is not None else ()
        groups = [self._matches[g] for g in declared if g in self._matches]
        groups.extend(self._declares[g] for g in self._globs.matching(name))
        if sum(len(g) for g in groups) <= len(candidates):
            found = {other for group in groups for other in group if other in candidates}
        else:
            found = {c for c in candidates if any(c in group for group in groups)}
        found.discard(name)
        return sorted(found)

    def replaced(self, name: str) -> bool:
        """Whether some unit's ``Replaces=`` glob matches ``name``."""
        return any(self._replacers[g] for g in self._replace_globs.matching(name))

    def replacement(self, name: str, spec: UnitSpec | None) -> set[str]:
        """Units ``name`` replaces by its ``Replaces=`` globs, and those that replace it."""
        found: set[str] = set()
        if spec is not None:
            for glob in spec.requirements.replaces:
                found |= self._replaced.get(glob, set())
        for glob in self._replace_globs.matching(name):
            found |= self._replacers[glob]
        found.discard(name)
        return found


def _discard(sets: dict[str, set[str]], key: str, item: str) -> None:
    members = sets.get(key)
    if members is not None:
        members.discard(item)
        if not members:
            del sets[key]


def _count(counts: dict[int, int], value: int, step: int) -> None:
    left = counts.get(value, 0) + step
    if left:
        counts[value] = left
    else:
        del counts[value]
