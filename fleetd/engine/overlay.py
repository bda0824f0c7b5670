"""A scoped pass's own view of the slots the engine keeps across passes (pure).

A scoped pass plans a few units against slots that already carry the room
of every other unit (and of its own units where they are placed now: the
overlay gives that room back first).  It must not change the kept slots:
the ``Overlay`` copies a slot the first time the pass changes it, and a
capacity class the first time one of its sorted lists changes (a list copy,
not a rebuild), so a pass costs what it places, not what the cluster holds.

Slots are reached through the overlay's map by number, which holds the
copies: code holding a slot across a change of that slot must use the one
``detach`` returns.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from fleetd.engine.index import CapacityClass, CapacityIndex
from fleetd.engine.slot import Conditions, Slot
from fleetd.engine.slots import Load, Slots


class SlotView(Mapping[str, Slot]):
    """Machine id -> the pass's current slot."""

    __slots__ = ("_base", "_by_number")

    def __init__(self, base: Mapping[str, Slot], by_number: dict[int, Slot]) -> None:
        self._base = base
        self._by_number = by_number

    def __getitem__(self, machine_id: str) -> Slot:
        return self._by_number[self._base[machine_id].number]

    def __iter__(self) -> Iterator[str]:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)


class OverlayIndex(CapacityIndex):
    """A CapacityIndex over a kept one: sorted lists and slots are copied on first change."""

    def __init__(self, base: CapacityIndex, by_number: dict[int, Slot]) -> None:
        super().__init__(base.groups, base.strategy, by_number, base.floor)
        self._base = base
        self._kept_admitted = base._admitted  # read only
        self._copies: dict[CapacityClass, CapacityClass] = {}
        self._own: set[int] = set()  # numbers of the slots copied

    def members(self, conditions: Conditions) -> list[Slot]:
        return [self._slots[s.number] for s in self._class(conditions).members]

    def detach(self, slot: Slot) -> Slot:
        number = slot.number
        slot = self._slots[number]
        if number not in self._own:
            slot = self._slots[number] = slot.copy()
            self._own.add(number)
        self._unsort(slot, self._classes_of(slot))
        return slot

    def attach(self, slot: Slot) -> None:
        self._sort(slot, self._classes_of(slot))

    def _classes_of(self, slot: Slot) -> list[CapacityClass]:
        found = [self._copy(cls) for cls in self._kept_admitted.get(slot.number, ())]
        found.extend(self._admitted.get(slot.number, ()))  # built for this pass (_class)
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
                self._slots[s.number] for s in self._groups.matching(conditions) if s.schedulable
            ]
            cls = self._classes[conditions] = self._admit(members)
        return cls


class Overlay:
    """What a Placer needs of Slots, over kept ones it does not change.

    ``give_back``: per machine, the room (cpu, mem, units) the kept slots count for
    the units of this pass, which it places itself."""

    def __init__(self, base: Slots, give_back: Mapping[str, Load]) -> None:
        self._base = base
        self.strategy = base.strategy
        self.by_number = dict(base.by_number)
        self.by_id: Mapping[str, Slot] = SlotView(base.by_id, self.by_number)
        self.groups = base.groups
        self.index: CapacityIndex = OverlayIndex(base.index, self.by_number)
        for machine, (cpu, mem, units) in give_back.items():
            slot = base.by_id.get(machine)
            if slot is not None:
                slot = self.index.detach(slot)
                slot.free_cpu += cpu
                slot.free_mem += mem
                slot.count -= units
                self.index.attach(slot)

    @property
    def ordered(self) -> list[Slot]:
        """Every machine's current slot, in id order."""
        return [self.by_number[s.number] for s in self._base.ordered]

    def pinned(self, prefix: str) -> Sequence[Slot]:
        return [self.by_number[s.number] for s in self._base.pinned(prefix)]
