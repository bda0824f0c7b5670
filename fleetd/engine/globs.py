"""Unit-name glob relations on machines (``Conflicts=`` and ``Replaces=``), pure.

A relation answers, for one machine, "which unit here matches one of these
globs" (forward) and "which unit here declares a glob matching this name"
(reverse) without scanning the machine's units or testing every glob in the
cluster: the globs every job may declare are known up front, bucketed by
their literal prefix, and each placement updates per-glob, per-machine name
sets.
"""

from __future__ import annotations

from collections.abc import Container, Iterable

from fleetd.constraints import GLOB_SPECIAL
from fleetd.requirements import glob_matches


def _literal_prefix(glob: str) -> str:
    # Up to the first special character: an escape (\*) spells its character differently.
    cut = min((i for i in (glob.find(ch) for ch in GLOB_SPECIAL) if i >= 0), default=len(glob))
    return glob[:cut]


class GlobSet:
    """A set of globs that finds the ones matching a name by literal-prefix buckets."""

    def __init__(self, globs: Iterable[str] = ()) -> None:
        self._by_prefix: dict[str, list[str]] = {}
        self._lengths: list[int] = []
        self._cache: dict[str, tuple[str, ...]] = {}
        for glob in globs:
            self.add(glob)

    def add(self, glob: str) -> None:
        prefix = _literal_prefix(glob)
        bucket = self._by_prefix.setdefault(prefix, [])
        if glob in bucket:
            return
        bucket.append(glob)
        if len(prefix) not in self._lengths:
            self._lengths.append(len(prefix))
        self._cache.clear()

    def __bool__(self) -> bool:
        return bool(self._by_prefix)

    def matching(self, name: str) -> tuple[str, ...]:
        """Every glob of the set that matches ``name`` (memoised per name)."""
        hit = self._cache.get(name)
        if hit is not None:
            return hit
        found: list[str] = []
        for length in self._lengths:
            if length > len(name):
                continue
            for glob in self._by_prefix.get(name[:length], ()):
                if glob_matches(glob, name):
                    found.append(glob)
        result = tuple(found)
        self._cache[name] = result
        return result


_NameSets = dict[str, dict[str, set[str]]]  # glob -> machine -> unit names


class GlobRelation:
    """Who matches and who declares each glob of one relation, per machine.

    ``globs`` must contain every glob any unit can declare for this relation
    (the scheduler collects them from all jobs before it starts).
    """

    def __init__(self, globs: Iterable[str]) -> None:
        self._globs = GlobSet(globs)
        self._matched: _NameSets = {}
        self._declared: _NameSets = {}

    def __bool__(self) -> bool:
        return bool(self._globs)

    def globs_matching(self, name: str) -> tuple[str, ...]:
        return self._globs.matching(name)

    def add_glob(self, glob: str, placements: Iterable[tuple[str, str]]) -> None:
        """A new glob, with the (unit, machine) placements whose unit matches it (a
        relation kept across passes learns globs as units declare them)."""
        self._globs.add(glob)
        for name, machine in placements:
            self._matched.setdefault(glob, {}).setdefault(machine, set()).add(name)

    def add(self, name: str, declares: tuple[str, ...], machine: str) -> None:
        for glob in self._globs.matching(name):
            self._matched.setdefault(glob, {}).setdefault(machine, set()).add(name)
        for glob in declares:
            self._declared.setdefault(glob, {}).setdefault(machine, set()).add(name)

    def remove(self, name: str, declares: tuple[str, ...], machine: str) -> None:
        for glob in self._globs.matching(name):
            _discard(self._matched, glob, machine, name)
        for glob in declares:
            _discard(self._declared, glob, machine, name)

    def forward(
        self, globs: tuple[str, ...], machine: str, exclude: str, skip: Container[str] = ()
    ) -> list[str]:
        """Units on ``machine`` (other than ``exclude`` and those in ``skip``) matched by
        any of ``globs``, sorted."""
        found: set[str] = set()
        for glob in globs:
            names = self._matched.get(glob, {}).get(machine)
            if names:
                found.update(names)
        found.discard(exclude)
        if skip:
            return sorted(n for n in found if n not in skip)
        return sorted(found)

    def machines(self, globs: tuple[str, ...], name: str, skip: Container[str] = ()) -> set[str]:
        """Machines where a unit (not in ``skip``) matches one of ``globs`` or declares a
        glob matching ``name``."""
        return self.machines_by(globs, self._globs.matching(name), skip)

    def machines_by(
        self, globs: tuple[str, ...], matching: tuple[str, ...], skip: Container[str] = ()
    ) -> set[str]:
        """``machines`` for a name that the globs ``matching`` (``globs_matching``) match."""
        found: set[str] = set()
        for glob in globs:
            found.update(_machines(self._matched.get(glob, {}), skip))
        for glob in matching:
            found.update(_machines(self._declared.get(glob, {}), skip))
        return found

    def reverse(self, name: str, machine: str, skip: Container[str] = ()) -> str | None:
        """A unit on ``machine`` (other than ``name`` and those in ``skip``) declaring a
        glob that matches ``name``: the first by name."""
        best: str | None = None
        for glob in self._globs.matching(name):
            for other in self._declared.get(glob, {}).get(machine, ()):
                if other != name and (best is None or other < best) and other not in skip:
                    best = other
        return best

    def placements(self) -> tuple[dict[str, dict[str, set[str]]], ...]:
        """(matched, declared): glob -> machine -> units, without empty entries (to compare
        a kept relation with a fresh one)."""
        return tuple(
            {glob: dict(per) for glob, per in sets.items() if per}
            for sets in (self._matched, self._declared)
        )


def _machines(per_machine: dict[str, set[str]], skip: Container[str]) -> Iterable[str]:
    if not skip:
        return per_machine
    if isinstance(skip, (set, frozenset)):  # a subset test runs in C
        return [m for m, names in per_machine.items() if not skip.issuperset(names)]
    return [m for m, names in per_machine.items() if any(n not in skip for n in names)]


def _discard(sets: _NameSets, glob: str, machine: str, name: str) -> None:
    per_machine = sets.get(glob)
    if per_machine is None:
        return
    names = per_machine.get(machine)
    if names is None:
        return
    names.discard(name)
    if not names:
        del per_machine[machine]
