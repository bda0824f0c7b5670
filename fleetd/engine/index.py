"""Free-capacity classes of machine slots: where a reservation fits best (pure).

Each distinct metadata condition set that jobs use gets a *class*: the
schedulable machines it admits, kept in lists sorted by free capacity
(binpack) or by unit count and free capacity (spread), so a placement is a
bisect plus a short walk instead of a scan of every machine.  The index
knows which classes admit each slot; slots know nothing of the index.  The
engine keeps one index across scoped passes (engine/slots.py), which see it
through a copy-on-write OverlayIndex (engine/overlay.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Container, Mapping, Sequence
from enum import StrEnum
from math import pow as _pow

from fleetd.engine.groups import MetadataGroups
from fleetd.engine.slot import Conditions, Slot

BINPACK_CANDIDATES = 8
"""How many of the closest fits binpack scores (Nomad limits its candidates too)."""


class Strategy(StrEnum):
    BINPACK = "binpack"
    SPREAD = "spread"


def binpack_score(slot: Slot, cpu: int, mem: int) -> float:
    """Nomad's best-fit score after placing (cpu, mem): 20 - (10^freeCPU + 10^freeMem)."""
    free_cpu = (slot.free_cpu - cpu) / slot.cap_cpu if slot.cap_cpu > 0 else 0.0
    free_mem = (slot.free_mem - mem) / slot.cap_mem if slot.cap_mem > 0 else 0.0
    return 20.0 - (_pow(10.0, free_cpu) + _pow(10.0, free_mem))


class CapacityClass:
    """The schedulable machines one condition set admits, sorted for fast search."""

    __slots__ = ("by_cpu", "by_mem", "counts", "levels", "levels_cpu", "members")

    def __init__(self, members: list[Slot], strategy: Strategy, floor: tuple[int, int]) -> None:
        self.members = sorted(members, key=_by_id)
        self.by_mem: list[int] = []
        self.by_cpu: list[int] = []
        # spread: unit count -> that level's machines by mem_key / cpu_key; counts sorted
        self.levels: dict[int, list[int]] = {}
        self.levels_cpu: dict[int, list[int]] = {}
        self.counts: list[int] = []
        if strategy is Strategy.BINPACK:
            self.by_mem = sorted(mem_key(s) for s in members)
            self.by_cpu = sorted(cpu_key(s) for s in members)
        else:
            for slot in members:
                if slot.fits(*floor):
                    self.levels.setdefault(slot.count, []).append(mem_key(slot))
                    self.levels_cpu.setdefault(slot.count, []).append(cpu_key(slot))
            for levels in (self.levels, self.levels_cpu):
                for level in levels.values():
                    level.sort()
            self.counts = sorted(self.levels)

    def copy(self) -> CapacityClass:
        """A copy whose sorted lists a pass may change (``members`` is shared)."""
        new = CapacityClass.__new__(CapacityClass)
        new.members = self.members
        new.by_mem, new.by_cpu = self.by_mem.copy(), self.by_cpu.copy()
        new.levels = {count: level.copy() for count, level in self.levels.items()}
        new.levels_cpu = {count: level.copy() for count, level in self.levels_cpu.items()}
        new.counts = self.counts.copy()
        return new

    def level_add(self, count: int, mem: int, cpu: int) -> None:
        level = self.levels.get(count)
        if level is None:
            self.levels[count] = [mem]
            self.levels_cpu[count] = [cpu]
            bisect.insort(self.counts, count)
        else:
            bisect.insort(level, mem)
            bisect.insort(self.levels_cpu[count], cpu)

    def level_remove(self, count: int, mem: int, cpu: int) -> None:
        level = self.levels[count]
        _remove(level, mem)
        _remove(self.levels_cpu[count], cpu)
        if not level:
            del self.levels[count], self.levels_cpu[count]
            _remove(self.counts, count)


# Sort keys are packed into one int (compared in C, unlike tuples):
# by_mem = free memory | free CPU | unit count | slot number, by_cpu swaps the
# first two.  Offsets keep fields >= 0.
_MEM_OFF = 1 << 62
_CPU_OFF = 1 << 31
_LOW = (1 << 32) - 1


def mem_key(s: Slot) -> int:
    return (
        ((s.free_mem + _MEM_OFF) << 96)
        | ((s.free_cpu + _CPU_OFF) << 64)
        | (s.count << 32)
        | s.number
    )


def cpu_key(s: Slot) -> int:
    return (
        ((s.free_cpu + _CPU_OFF) << 128)
        | ((s.free_mem + _MEM_OFF) << 64)
        | (s.count << 32)
        | s.number
    )


def _remove(items: list[int], key: int) -> None:
    del items[bisect.bisect_left(items, key)]


def _by_id(slot: Slot) -> str:
    return slot.id


class CapacityIndex:
    """Finds the best machine for a reservation among the machines a condition set admits.

    Callers must ``detach`` a slot before changing its free capacity or unit
    count (changing the slot ``detach`` returns) and ``attach`` it afterwards,
    so the sorted lists stay sorted.
    """

    def __init__(
        self,
        groups: MetadataGroups,
        strategy: Strategy,
        slots: dict[int, Slot],
        floor: tuple[int, int] = (0, 0),
    ) -> None:
        """``slots`` by number (``slots[n].number == n``); ``groups`` over the same slots.

        ``floor`` is the smallest (cpu, mem) any job of the pass needs: spread
        leaves machines without that much room out of its list, so full
        machines with few units are not walked past again and again.
        """
        self._slots = slots
        self._floor = floor
        self._groups = groups
        self._strategy = strategy
        self._classes: dict[Conditions, CapacityClass] = {}
        self._admitted: dict[int, list[CapacityClass]] = {}  # slot number -> its classes

    def members(self, conditions: Conditions) -> list[Slot]:
        """The schedulable machines ``conditions`` admit, sorted by id."""
        return self._class(conditions).members

    def detach(self, slot: Slot) -> Slot:
        """Take ``slot`` out of the sorted lists; returns the slot to change (itself here)."""
        self._unsort(slot, self._admitted.get(slot.number, ()))
        return slot

    def attach(self, slot: Slot) -> None:
        self._sort(slot, self._admitted.get(slot.number, ()))

    def _unsort(self, slot: Slot, classes: Sequence[CapacityClass]) -> None:
        """Take ``slot``'s keys out of the sorted lists of ``classes``."""
        if not classes:
            return
        if self._strategy is Strategy.BINPACK:
            mem, cpu = mem_key(slot), cpu_key(slot)
            for cls in classes:
                _remove(cls.by_mem, mem)
                _remove(cls.by_cpu, cpu)
        elif slot.fits(*self._floor):  # else it was left out when last attached
            mem, cpu = mem_key(slot), cpu_key(slot)
            for cls in classes:
                cls.level_remove(slot.count, mem, cpu)

    def _sort(self, slot: Slot, classes: Sequence[CapacityClass]) -> None:
        """Put ``slot``'s keys into the sorted lists of ``classes``."""
        if not classes:
            return
        if self._strategy is Strategy.BINPACK:
            mem, cpu = mem_key(slot), cpu_key(slot)
            for cls in classes:
                bisect.insort(cls.by_mem, mem)
                bisect.insort(cls.by_cpu, cpu)
        elif slot.fits(*self._floor):
            mem, cpu = mem_key(slot), cpu_key(slot)
            for cls in classes:
                cls.level_add(slot.count, mem, cpu)

    def best(
        self, conditions: Conditions, cpu: int, mem: int, avoid: Container[str] = ()
    ) -> Slot | None:
        """The best machine with room for (cpu, mem) whose id is not in ``avoid``, or None."""
        cls = self._class(conditions)
        if self._strategy is Strategy.SPREAD:
            return _least_loaded(cls, self._slots, cpu, mem, avoid)
        return _best_fit(cls, self._slots, cpu, mem, avoid)

    # --- kept across passes (engine/slots.py) ---

    @property
    def classes(self) -> Mapping[Conditions, CapacityClass]:
        return self._classes

    @property
    def strategy(self) -> Strategy:
        return self._strategy

    @property
    def groups(self) -> MetadataGroups:
        return self._groups

    @property
    def floor(self) -> tuple[int, int]:
        return self._floor

    def classes_of(self, slot: Slot) -> Sequence[CapacityClass]:
        """The classes that admit ``slot`` (by its number)."""
        return self._admitted.get(slot.number, ())

    def prepare(self, conditions: Conditions) -> None:
        """Build the class of ``conditions`` now (a pass over kept slots only reads them)."""
        self._class(conditions)

    def readmit(self, slot: Slot) -> None:
        """Recompute which classes admit the detached ``slot`` (its metadata or flags
        changed, or it left: unschedulable slots belong to none)."""
        wanted = [
            cls
            for conditions, cls in self._classes.items()
            if slot.schedulable and self._groups.reason(conditions, slot) is None
        ]
        had = self._admitted.pop(slot.number, [])
        for cls in had:
            if cls not in wanted:
                del cls.members[bisect.bisect_left(cls.members, slot.id, key=_by_id)]
        for cls in wanted:
            if cls not in had:
                bisect.insort(cls.members, slot, key=_by_id)
        if wanted:
            self._admitted[slot.number] = wanted

    def _class(self, conditions: Conditions) -> CapacityClass:
        cls = self._classes.get(conditions)
        if cls is None:
            members = [s for s in self._groups.matching(conditions) if s.schedulable]
            cls = self._classes[conditions] = self._admit(members)
        return cls

    def _admit(self, members: list[Slot]) -> CapacityClass:
        """A new class of ``members``, recorded as admitting each of them."""
        cls = CapacityClass(members, self._strategy, self._floor)
        for slot in members:
            self._admitted.setdefault(slot.number, []).append(cls)
        return cls


def _least_loaded(
    cls: CapacityClass, slots: dict[int, Slot], cpu: int, mem: int, avoid: Container[str]
) -> Slot | None:
    # Fewest units first; within a level the tightest fit on the scarcer dimension
    # (then id).  A level where no machine has enough of either costs two comparisons.
    need_mem, need_cpu = (mem + _MEM_OFF) << 96, (cpu + _CPU_OFF) << 128
    for count in cls.counts:
        by_mem, by_cpu = cls.levels[count], cls.levels_cpu[count]
        if by_mem[-1] < need_mem or by_cpu[-1] < need_cpu:
            continue
        at_mem, at_cpu = bisect.bisect_left(by_mem, need_mem), bisect.bisect_left(by_cpu, need_cpu)
        if len(by_mem) - at_mem <= len(by_cpu) - at_cpu:
            for i in range(at_mem, len(by_mem)):
                slot = slots[by_mem[i] & _LOW]
                if slot.free_cpu >= cpu and slot.id not in avoid:
                    return slot
        else:
            for i in range(at_cpu, len(by_cpu)):
                slot = slots[by_cpu[i] & _LOW]
                if slot.free_mem >= mem and slot.id not in avoid:
                    return slot
    return None


def _best_fit(
    cls: CapacityClass, slots: dict[int, Slot], cpu: int, mem: int, avoid: Container[str]
) -> Slot | None:
    # Walk the dimension where fewer machines have room: every entry from the
    # bisect point on fits that dimension, the other one is checked per entry.
    at_mem = bisect.bisect_left(cls.by_mem, (mem + _MEM_OFF) << 96)
    at_cpu = bisect.bisect_left(cls.by_cpu, (cpu + _CPU_OFF) << 128)
    if len(cls.by_mem) - at_mem <= len(cls.by_cpu) - at_cpu:
        walk, start, other_is_cpu = cls.by_mem, at_mem, True
    else:
        walk, start, other_is_cpu = cls.by_cpu, at_cpu, False
    best: Slot | None = None
    best_key: tuple[float, int, str] | None = None
    found = 0
    for i in range(start, len(walk)):
        slot = slots[walk[i] & _LOW]
        if other_is_cpu:
            if slot.free_cpu < cpu:
                continue
        elif slot.free_mem < mem:
            continue
        if avoid and slot.id in avoid:
            continue
        key = (-binpack_score(slot, cpu, mem), slot.count, slot.id)
        if best_key is None or key < best_key:
            best, best_key = slot, key
        found += 1
        if found >= BINPACK_CANDIDATES:
            break
    return best
