"""Unit-name glob relations on machines (``Conflicts=`` and ``Replaces=``), pure.

A relation answers, for one machine, "which unit here matches one of these
globs" (forward) and "which unit here declares a glob matching this name"
(reverse) without scanning the machine's units or testing every glob in the
cluster: the globs every job may declare are known up front, bucketed by
their literal prefix, and each placement updates per-glob, per-machine name
sets.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetd.requirements import glob_matches

_WILDCARDS = "*?["


def _literal_prefix(glob: str) -> str:
    cut = min((i for i in (glob.find(ch) for ch in _WILDCARDS) if i >= 0), default=len(glob))
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

    def forward(self, globs: tuple[str, ...], machine: str, exclude: str) -> list[str]:
        """Units on ``machine`` (other than ``exclude``) matched by any of ``globs``, sorted."""
        found: set[str] = set()
        for glob in globs:
            names = self._matched.get(glob, {}).get(machine)
            if names:
                found.update(names)
        found.discard(exclude)
        return sorted(found)

    def machines(self, globs: tuple[str, ...], name: str) -> set[str]:
        """Machines where a unit matches one of ``globs`` or declares a glob matching ``name``."""
        found: set[str] = set()
        for glob in globs:
            found.update(self._matched.get(glob, ()))
        for glob in self._globs.matching(name):
            found.update(self._declared.get(glob, ()))
        return found

    def reverse(self, name: str, machine: str) -> str | None:
        """A unit on ``machine`` (other than ``name``) declaring a glob that matches ``name``."""
        best: str | None = None
        for glob in self._globs.matching(name):
            for other in self._declared.get(glob, {}).get(machine, ()):
                if other != name and (best is None or other < best):
                    best = other
        return best


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
