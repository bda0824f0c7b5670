"""Views of what the engine keeps across passes, to compare a kept copy with a fresh one."""

from __future__ import annotations

from collections.abc import Iterable

from fleetd.engine.index import cpu_key, mem_key
from fleetd.engine.ledger import Ledger
from fleetd.engine.model import ClusterModel
from fleetd.engine.slots import Slots

_LOW = (1 << 32) - 1


def describe(slots: Slots) -> dict[str, object]:
    """Everything about machine slots that decides a pass, without slot numbers."""
    numbered = slots.by_number

    def ids(keys: Iterable[int]) -> list[str]:
        return [numbered[key & _LOW].id for key in keys]

    classes: dict[object, object] = {}
    for conditions, cls in slots.index.classes.items():
        for key in cls.by_mem:  # every key is the one its slot has now
            assert key == mem_key(numbered[key & _LOW])
        for key in cls.by_cpu:
            assert key == cpu_key(numbered[key & _LOW])
        for level in cls.levels.values():
            assert all(key == mem_key(numbered[key & _LOW]) for key in level)
        classes[conditions] = (
            [s.id for s in cls.members],
            sorted(s.id for s in slots.ordered if cls in slots.index.classes_of(s)),
            ids(cls.by_mem),
            ids(cls.by_cpu),
            {count: ids(level) for count, level in cls.levels.items()},
            {count: ids(level) for count, level in cls.levels_cpu.items()},
            list(cls.counts),
        )
    assert all(numbered[s.number] is s for s in slots.ordered)
    assert sorted(slots.by_id) == [s.id for s in slots.ordered]
    return {
        "slots": {
            s.id: (
                s.signature,
                (s.cap_cpu, s.cap_mem, s.free_cpu, s.free_mem, s.count),
                (s.unschedulable, s.draining),
            )
            for s in slots.ordered
        },
        "prefixes": {p: [s.id for s in pinned] for p, pinned in slots.by_prefix.items()},
        "groups": slots.groups.groups(),
        "classes": classes,
    }


def conflicts(ledger: Ledger, model: ClusterModel) -> object:
    """The kept Conflicts= relation, for the globs units declare now (a kept one also
    remembers globs no unit declares any more: no check asks about them)."""
    declared = {g for spec in model.units.values() for g in spec.requirements.conflicts}
    return [
        {g: per for g, per in sets.items() if g in declared}
        for sets in ledger.conflicts.placements()
    ]
