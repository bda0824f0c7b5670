"""A scoped pass's own view of the fleet the engine keeps across passes (pure).

A scoped pass plans a few units against slots that already carry the room
of every other unit.  It must not change those slots: the ``Overlay``
copies a slot the first time the pass changes it, and a capacity class the
first time one of its sorted lists changes (a list copy, not a rebuild), so
a pass costs what it places, not what the cluster holds.

Slots are reached through the overlay's numbered list, which holds the
copies: code holding a slot across a change of that slot must use the one
``detach`` returns.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from fleetd.engine.fleet import Fleet
from fleetd.engine.index import (
    CapacityClass,
    CapacityIndex,
    Conditions,
    Slot,
)


class SlotView(Mapping[str, Slot]):
    """Machine id -> the pass's current slot."""

    __slots__ = ("_base", "_numbered")

    def __init__(self, base: Mapping[str, Slot], numbered: list[Slot]) -> None:
        self._base = base
        self._numbered = numbered

    def __getitem__(self, machine_id: str) -> Slot:
        return self._numbered[self._base[machine_id].index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)


class OverlayIndex(CapacityIndex):
    """A CapacityIndex over a kept one: sorted lists and slots are copied on first change."""

    def __init__(self, base: CapacityIndex, numbered: list[Slot]) -> None:
        super().__init__(base.groups, base.strategy, numbered, base.floor)
        self._base = base
        self._copies: dict[CapacityClass, CapacityClass] = {}
        self._own: set[int] = set()  # numbers of the slots copied
        # Classes the kept index did not have, built for this pass: slot number -> them.
        self._extra: dict[int, list[CapacityClass]] = {}

    def members(self, conditions: Conditions) -> list[Slot]:
        return [self._slots[s.index] for s in self._class(conditions).members]

    def detach(self, slot: Slot) -> Slot:
        number = slot.index
        slot = self._slots[number]
        if number not in self._own:
            slot = self._slots[number] = slot.copy()
            self._own.add(number)
        self._unsort(slot, self._classes_of(slot))
        return slot

    def attach(self, slot: Slot) -> None:
        self._sort(slot, self._classes_of(slot))

    def _classes_of(self, slot: Slot) -> list[CapacityClass]:
        found = [self._copy(cls) for cls in slot.classes]
        found.extend(self._extra.get(slot.index, ()))
        return found

    def _copy(self, cls: CapacityClass) -> CapacityClass:
        copy = self._copies.get(cls)
        if copy is None:
            copy = self._copies[cls] = cls.copy()
        return copy

    def _class(self, conditions: Conditions) -> CapacityClass:
        kept = self._base.classes.get(conditions)
        if kept is not None:
            return self._copies.get(kept, kept)
        cls = self._classes.get(conditions)
        if cls is None:
            # Not prepared in the kept index: built from this pass's slots, for this pass.
            members = [
                self._slots[s.index] for s in self._groups.matching(conditions) if s.schedulable
            ]
            cls = CapacityClass(members, self._strategy, self._floor, register=False)
            self._classes[conditions] = cls
            for slot in members:
                self._extra.setdefault(slot.index, []).append(cls)
        return cls


class Overlay:
    """What a Placer needs of a Fleet, over a kept one it does not change."""

    def __init__(self, base: Fleet) -> None:
        self._base = base
        self.strategy = base.strategy
        self.numbered = list(base.numbered)
        self.slots: Mapping[str, Slot] = SlotView(base.slots, self.numbered)
        self.groups = base.groups
        self.index: CapacityIndex = OverlayIndex(base.index, self.numbered)

    @property
    def all_slots(self) -> list[Slot]:
        """Every machine's current slot, in id order."""
        return [self.numbered[s.index] for s in self._base.all_slots]

    def pinned(self, prefix: str) -> Sequence[Slot]:
        return [self.numbered[s.index] for s in self._base.pinned(prefix)]
