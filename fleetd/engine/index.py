"""Machine indexes for the scheduler: metadata groups and free-capacity classes (pure).

Machines with the same effective metadata form a group; a metadata condition
set is evaluated once per group and cached.  Each distinct condition set
that jobs use gets a *class*: the schedulable machines it admits, kept in
lists sorted by free capacity (binpack) or unit count (spread), so a
placement is a bisect plus a short walk instead of a scan of every machine.
"""

from __future__ import annotations

import bisect
from collections.abc import Container, Iterable
from enum import StrEnum
from math import pow as _pow

from fleetd.requirements import MetadataCondition, MetadataOp, metadata_matches

Conditions = tuple[MetadataCondition, ...]
Signature = tuple[tuple[str, str], ...]

BINPACK_CANDIDATES = 8
"""How many of the closest fits binpack scores (Nomad limits its candidates too)."""


class Strategy(StrEnum):
    BINPACK = "binpack"
    SPREAD = "spread"


class Slot:
    """One machine as the scheduler sees it during a pass (mutable, internal)."""

    __slots__ = (
        "cap_cpu",
        "cap_mem",
        "classes",
        "count",
        "draining",
        "free_cpu",
        "free_mem",
        "id",
        "index",
        "signature",
        "unschedulable",
    )

    def __init__(
        self,
        machine_id: str,
        signature: Signature,
        cpu: int,
        mem: int,
        unschedulable: bool = False,
        draining: bool = False,
    ) -> None:
        self.id = machine_id
        self.index = 0  # position in machine-id order, set by the scheduler
        self.signature = signature
        self.cap_cpu = self.free_cpu = cpu
        self.cap_mem = self.free_mem = mem
        self.count = 0
        self.unschedulable = unschedulable
        self.draining = draining
        self.classes: list[_Class] = []

    @property
    def schedulable(self) -> bool:
        return not (self.unschedulable or self.draining)

    def fits(self, cpu: int, mem: int) -> bool:
        return cpu <= self.free_cpu and mem <= self.free_mem


def binpack_score(slot: Slot, cpu: int, mem: int) -> float:
    """Nomad's best-fit score after placing (cpu, mem): 20 - (10^freeCPU + 10^freeMem)."""
    free_cpu = (slot.free_cpu - cpu) / slot.cap_cpu if slot.cap_cpu > 0 else 0.0
    free_mem = (slot.free_mem - mem) / slot.cap_mem if slot.cap_mem > 0 else 0.0
    return 20.0 - (_pow(10.0, free_cpu) + _pow(10.0, free_mem))


class MetadataGroups:
    """Machines grouped by effective metadata, with cached condition evaluation."""

    def __init__(self, slots: Iterable[Slot]) -> None:
        self._groups: dict[Signature, list[Slot]] = {}
        self._by_pair: dict[tuple[str, str], list[Signature]] = {}
        self._reasons: dict[tuple[Conditions, Signature], str | None] = {}
        for slot in slots:
            members = self._groups.get(slot.signature)
            if members is None:
                members = self._groups[slot.signature] = []
                for pair in slot.signature:
                    self._by_pair.setdefault(pair, []).append(slot.signature)
            members.append(slot)

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


class _Class:
    """The schedulable machines one condition set admits, sorted for fast search."""

    __slots__ = ("by_count", "by_cpu", "by_mem", "members")

    def __init__(self, members: list[Slot], strategy: Strategy, floor: tuple[int, int]) -> None:
        self.members = sorted(members, key=lambda s: s.id)
        self.by_mem: list[int] = []
        self.by_cpu: list[int] = []
        self.by_count: list[int] = []
        if strategy is Strategy.BINPACK:
            self.by_mem = sorted(_mem_key(s) for s in members)
            self.by_cpu = sorted(_cpu_key(s) for s in members)
        else:
            self.by_count = sorted(_count_key(s) for s in members if s.fits(*floor))
        for slot in members:
            slot.classes.append(self)


# Sort keys are packed into one int (compared in C, unlike tuples):
# by_mem = free memory | free CPU | unit count | slot index, by_cpu swaps the
# first two, by_count = unit count | slot index.  Offsets keep fields >= 0.
_MEM_OFF = 1 << 62
_CPU_OFF = 1 << 31
_LOW = (1 << 32) - 1


def _mem_key(s: Slot) -> int:
    return (
        ((s.free_mem + _MEM_OFF) << 96)
        | ((s.free_cpu + _CPU_OFF) << 64)
        | (s.count << 32)
        | s.index
    )


def _cpu_key(s: Slot) -> int:
    return (
        ((s.free_cpu + _CPU_OFF) << 128)
        | ((s.free_mem + _MEM_OFF) << 64)
        | (s.count << 32)
        | s.index
    )


def _count_key(s: Slot) -> int:
    return (s.count << 32) | s.index


def _remove(items: list[int], key: int) -> None:
    del items[bisect.bisect_left(items, key)]


class CapacityIndex:
    """Finds the best machine for a reservation among the machines a condition set admits.

    Callers must ``detach`` a slot before changing its free capacity or unit
    count and ``attach`` it afterwards, so the sorted lists stay sorted.
    """

    def __init__(
        self,
        groups: MetadataGroups,
        strategy: Strategy,
        slots: list[Slot],
        floor: tuple[int, int] = (0, 0),
    ) -> None:
        """``slots`` in index order (``slots[i].index == i``).

        ``floor`` is the smallest (cpu, mem) any job of the pass needs: spread
        leaves machines without that much room out of its list, so full
        machines with few units are not walked past again and again.
        """
        self._slots = slots
        self._floor = floor
        self._groups = groups
        self._strategy = strategy
        self._classes: dict[Conditions, _Class] = {}

    def members(self, conditions: Conditions) -> list[Slot]:
        """The schedulable machines ``conditions`` admit, sorted by id."""
        return self._class(conditions).members

    def detach(self, slot: Slot) -> None:
        if not slot.classes:
            return
        if self._strategy is Strategy.BINPACK:
            mem_key, cpu_key = _mem_key(slot), _cpu_key(slot)
            for cls in slot.classes:
                _remove(cls.by_mem, mem_key)
                _remove(cls.by_cpu, cpu_key)
        else:
            if not slot.fits(*self._floor):
                return  # it was left out when last attached (nothing changed since)
            count_key = _count_key(slot)
            for cls in slot.classes:
                _remove(cls.by_count, count_key)

    def attach(self, slot: Slot) -> None:
        if not slot.classes:
            return
        if self._strategy is Strategy.BINPACK:
            mem_key, cpu_key = _mem_key(slot), _cpu_key(slot)
            for cls in slot.classes:
                bisect.insort(cls.by_mem, mem_key)
                bisect.insort(cls.by_cpu, cpu_key)
        else:
            if not slot.fits(*self._floor):
                return
            count_key = _count_key(slot)
            for cls in slot.classes:
                bisect.insort(cls.by_count, count_key)

    def best(
        self, conditions: Conditions, cpu: int, mem: int, avoid: Container[str] = ()
    ) -> Slot | None:
        """The best machine with room for (cpu, mem) whose id is not in ``avoid``, or None."""
        cls = self._class(conditions)
        if self._strategy is Strategy.SPREAD:
            for key in cls.by_count:
                slot = self._slots[key & _LOW]
                if slot.fits(cpu, mem) and slot.id not in avoid:
                    return slot
            return None
        return _best_fit(cls, self._slots, cpu, mem, avoid)

    def _class(self, conditions: Conditions) -> _Class:
        cls = self._classes.get(conditions)
        if cls is None:
            members = [s for s in self._groups.matching(conditions) if s.schedulable]
            cls = self._classes[conditions] = _Class(members, self._strategy, self._floor)
        return cls


def _best_fit(
    cls: _Class, slots: list[Slot], cpu: int, mem: int, avoid: Container[str]
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
