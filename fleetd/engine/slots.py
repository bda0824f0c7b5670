"""Every machine as the scheduler sees it: slots, metadata groups, capacity index (pure).

A full pass builds ``Slots`` of its own and changes them as it places
units.  The engine's model also keeps one across passes, carrying the room
every placed unit takes (``update`` brings one machine up to date after its
load, capacity, metadata or flags changed, or after it left), so that a
scoped pass starts from it instead of building slots for every machine:
it plans on an ``Overlay`` (engine/overlay.py), which copies what it
changes and leaves the kept slots as they were.

Slots are numbered in machine-id order (the capacity lists break ties by
that number), with gaps: a machine that joins takes a number between its
neighbours' (in id order), so the kept slots grow in place; only when two
neighbours have no number left between them are they built anew.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from fleetd.engine.groups import MetadataGroups
from fleetd.engine.index import CapacityIndex, Strategy
from fleetd.engine.slot import Signature, Slot
from fleetd.model import Machine, MachineFlags

Load = tuple[int, int, int]
"""CPU millis, memory bytes and unit count that units take on one machine."""

_GAP = 1 << 12
"""Slot numbers are this far apart when slots are built (room for joins between them)."""
_NUMBERS = 1 << 32
"""Slot numbers are below this (the capacity index packs them into 32 bits)."""


@lru_cache(maxsize=1 << 14)
def _signature(metadata: Signature, overrides: Signature) -> Signature:
    """Effective metadata, sorted (memoised: machines of a cluster share a few shapes)."""
    merged = dict(metadata)
    merged.update(overrides)
    return tuple(sorted(merged.items()))


def make_slot(machine: Machine, flags: MachineFlags | None, load: Sequence[int] | None) -> Slot:
    slot = Slot(
        machine.id,
        _signature(machine.metadata, flags.metadata_overrides if flags is not None else ()),
        machine.capacity.cpu_millis,
        machine.capacity.memory_bytes,
        unschedulable=flags is not None and flags.unschedulable,
        draining=flags is not None and flags.draining,
        systemd_connected=machine.systemd_connected,
    )
    if load is not None:
        slot.free_cpu -= load[0]
        slot.free_mem -= load[1]
        slot.count += load[2]
    return slot


def _by_id(slot: Slot) -> str:
    return slot.id


class Slots:
    """Every machine's slot, by id, in id order and by number, with its metadata groups
    and capacity index."""

    def __init__(
        self,
        machines: Iterable[Machine],
        flags: Mapping[str, MachineFlags],
        load: Mapping[str, Sequence[int]],
        strategy: Strategy,
        floor: tuple[int, int] = (0, 0),
    ) -> None:
        """``load``: per machine, the (cpu, mem, units) already placed there.  ``floor``:
        see CapacityIndex (kept slots serve any pass: (0, 0))."""
        self.strategy = strategy
        self.by_id = {m.id: make_slot(m, flags.get(m.id), load.get(m.id)) for m in machines}
        self.ordered = sorted(self.by_id.values(), key=_by_id)
        gap = max(1, min(_GAP, (_NUMBERS - 1) // (len(self.ordered) + 1)))
        for i, slot in enumerate(self.ordered):
            slot.number = (i + 1) * gap
        self.by_number = {slot.number: slot for slot in self.ordered}
        self.by_prefix: dict[str, list[Slot]] = {}
        for slot in self.ordered:
            self.by_prefix.setdefault(slot.id[:8], []).append(slot)
        self.groups = MetadataGroups(self.ordered)
        self.index = CapacityIndex(self.groups, strategy, self.by_number, floor)

    def pinned(self, prefix: str) -> Sequence[Slot]:
        """Machines whose id starts with the same 8 characters as ``prefix``."""
        return self.by_prefix.get(prefix[:8], ())

    # --- kept across passes ---

    def update(
        self,
        machine_id: str,
        machine: Machine | None,
        flags: MachineFlags | None,
        load: Sequence[int] | None,
    ) -> bool:
        """Bring one machine's slot up to date (``machine`` None: it left; ``load`` as in
        ``__init__``).  False if it cannot be done in place (a machine that joins where
        no number is left between its neighbours: build new slots)."""
        slot = self.by_id.get(machine_id)
        if machine is None:
            if slot is not None:
                self._drop(slot)
            return True
        new = make_slot(machine, flags, load)
        if slot is None:
            return self._join(new)
        same_class = new.signature == slot.signature and new.schedulable == slot.schedulable
        if same_class and _values(new) == _values(slot):
            return True
        self.index.detach(slot)
        if new.signature != slot.signature:
            self.groups.remove(slot)
            slot.signature = new.signature
            self.groups.add(slot)
        slot.cap_cpu, slot.cap_mem = new.cap_cpu, new.cap_mem
        slot.free_cpu, slot.free_mem, slot.count = new.free_cpu, new.free_mem, new.count
        slot.unschedulable, slot.draining = new.unschedulable, new.draining
        slot.systemd_connected = new.systemd_connected
        if not same_class:
            self.index.readmit(slot)
        self.index.attach(slot)
        return True

    def _join(self, slot: Slot) -> bool:
        at = bisect.bisect_left(self.ordered, slot.id, key=_by_id)
        low = self.ordered[at - 1].number if at > 0 else 0
        high = self.ordered[at].number if at < len(self.ordered) else _NUMBERS
        slot.number = (low + high) // 2
        if slot.number == low:
            return False
        self.by_id[slot.id] = slot
        self.ordered.insert(at, slot)
        self.by_number[slot.number] = slot
        bisect.insort(self.by_prefix.setdefault(slot.id[:8], []), slot, key=_by_id)
        self.groups.add(slot)
        self.index.readmit(slot)
        self.index.attach(slot)
        return True

    def _drop(self, slot: Slot) -> None:
        self.index.detach(slot)
        slot.unschedulable = True  # admitted by no class from now on
        self.index.readmit(slot)
        self.groups.remove(slot)
        del self.by_id[slot.id]
        del self.by_number[slot.number]
        del self.ordered[bisect.bisect_left(self.ordered, slot.id, key=_by_id)]
        pinned = self.by_prefix[slot.id[:8]]
        pinned.remove(slot)
        if not pinned:
            del self.by_prefix[slot.id[:8]]


def _values(slot: Slot) -> tuple[object, ...]:
    return (
        slot.cap_cpu,
        slot.cap_mem,
        slot.free_cpu,
        slot.free_mem,
        slot.count,
        slot.unschedulable,
        slot.draining,
        slot.systemd_connected,
    )
