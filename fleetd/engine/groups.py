"""Machines grouped by effective metadata, with cached condition evaluation (pure).

Machines with the same effective metadata form a group; a metadata condition
set is evaluated once per group, and ``=`` conditions find their groups
through a (key, value) index instead of testing every group.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetd.engine.slot import Conditions, Signature, Slot
from fleetd.requirements import MetadataOp, metadata_matches


class MetadataGroups:
    """Machines grouped by effective metadata, with cached condition evaluation."""

    def __init__(self, slots: Iterable[Slot]) -> None:
        self._groups: dict[Signature, list[Slot]] = {}
        self._by_pair: dict[tuple[str, str], list[Signature]] = {}
        self._reasons: dict[tuple[Conditions, Signature], str | None] = {}
        for slot in slots:
            self.add(slot)

    def add(self, slot: Slot) -> None:
        members = self._groups.get(slot.signature)
        if members is None:
            members = self._groups[slot.signature] = []
            for pair in slot.signature:
                self._by_pair.setdefault(pair, []).append(slot.signature)
        members.append(slot)

    def remove(self, slot: Slot) -> None:
        """Forget ``slot`` (under its current signature)."""
        members = self._groups[slot.signature]
        members.remove(slot)
        if not members:
            del self._groups[slot.signature]
            for pair in slot.signature:
                signatures = self._by_pair[pair]
                signatures.remove(slot.signature)
                if not signatures:
                    del self._by_pair[pair]

    def groups(self) -> dict[Signature, list[str]]:
        """Machine ids by signature, sorted (to compare a kept instance with a fresh one)."""
        return {sig: sorted(s.id for s in members) for sig, members in self._groups.items()}

    def reason(self, conditions: Conditions, slot: Slot) -> str | None:
        """Why ``slot``'s metadata fails ``conditions`` (None if it matches)."""
        if not conditions:
            return None
        key = (conditions, slot.signature)
        try:
            return self._reasons[key]
        except KeyError:
            result = metadata_matches(conditions, dict(slot.signature))
            self._reasons[key] = result
            return result

    def matching(self, conditions: Conditions) -> list[Slot]:
        """Every machine (schedulable or not) whose metadata satisfies ``conditions``."""
        signatures: Iterable[Signature] = self._groups
        equal: dict[str, list[str]] = {}
        for cond in conditions:
            if cond.op is MetadataOp.EQ:
                equal.setdefault(cond.key, []).append(cond.value)
        if equal:
            # One '=' key narrows the groups through the (key, value) index.
            key, values = min(equal.items(), key=lambda kv: self._narrowed(kv[0], kv[1]))
            signatures = dict.fromkeys(s for v in values for s in self._by_pair.get((key, v), ()))
        found: list[Slot] = []
        for signature in signatures:
            members = self._groups[signature]
            if self.reason(conditions, members[0]) is None:
                found.extend(members)
        return found

    def _narrowed(self, key: str, values: list[str]) -> int:
        return sum(len(self._by_pair.get((key, v), ())) for v in values)
